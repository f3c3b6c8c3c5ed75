"""The floor of the rolling-upgrade benchmark: a bare script doing the console's per-node sequence and nothing else.

For each app server in turn, over one SSH connection per node (paramiko) and balancer-manager over HTTP from
this machine (the address the testbed's balancer-manager answers): disable the member → wait until it has no
request in flight → stop Tomcat (SIGTERM, then wait for the JVM to go) → copy the WAR into webapps →
start Tomcat → wait until Joget answers on the node itself → enable the member → next node.

No probe, no checksum, no log kept, no check through the balancer, no rejoin check: what an admin's shortest
correct script does (it also installs the WAR as root into the service user's webapps directory, which the
console never does: a floor to measure against, not a pattern to copy).
"""

from __future__ import annotations

import re
import shlex
import time
import urllib.parse
from pathlib import Path

from nodes import web
from nodes.testbed.remote import connect

MANAGER = "/balancer-manager"
POLL = 0.2


def _sh(client, command: str, timeout: float = 300) -> str:
    _, out, err = client.exec_command(command, timeout=timeout)
    text = out.read().decode()
    if out.channel.recv_exit_status() != 0:
        raise RuntimeError(f"{command[:120]}: {err.read().decode()[-500:]}")
    return text


class Balancer:
    def __init__(self, inventory: dict):
        lb = inventory["load_balancer"]
        node = next(n for n in inventory["nodes"] if n["name"] == lb["node"] or "load_balancer" in n["roles"])
        self.host, self.port, self.name = node["address"], lb["http_port"], inventory["cluster"]

    def page(self) -> str:
        reply = web.get(self.host, self.port, MANAGER, timeout=10)
        if reply.status != 200:
            raise RuntimeError(f"balancer-manager: {reply.status or reply.error}")
        return reply.text

    def member(self, route: str, page: str | None = None) -> dict:
        # The console's HTML table reader (plain parsing; it needs Django's apps loaded, as they are in the bench).
        from nodes.health.balancer_manager import parse_balancer_manager

        return parse_balancer_manager(page or self.page())[route]

    def set_disabled(self, route: str, disabled: bool) -> None:
        page = self.page()
        links = [urllib.parse.unquote(h.replace("&amp;", "&")) for h in re.findall(r'href="([^"]*nonce=[^"]*)"', page)]
        nonce = re.search(r"nonce=([\w-]+)", links[0]).group(1)
        form = {"b": self.name, "w": self.member(route, page)["url"], "nonce": nonce,
                "w_status_D": "1" if disabled else "0"}
        url = f"http://{self.host}:{self.port}{MANAGER}"
        reply = web.post_form(self.host, self.port, MANAGER, form, timeout=10, headers={"Referer": url})
        if reply.status not in (200, 302):
            raise RuntimeError(f"balancer-manager refused {form}: {reply.status or reply.error}")

    def wait_idle(self, route: str, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while self.member(route).get("busy") and time.monotonic() < end:
            time.sleep(POLL)


def roll_one(node: dict, client, balancer: Balancer, war: Path, context: str) -> float:
    """Roll one node; returns the seconds from the start command to Joget's answer (Tomcat's start)."""
    route, base, home = node["jvm_route"], node["catalina_base"], node["catalina_home"]
    env = f"env CATALINA_HOME={home} CATALINA_BASE={base} CATALINA_PID={base}/temp/catalina.pid"
    balancer.set_disabled(route, True)
    balancer.wait_idle(route)
    # Graceful: SIGTERM runs Tomcat's shutdown hook (what `catalina.sh stop` asks for, without a second JVM).
    _sh(client, f"pid=$(pgrep -u tomcat -x java); kill -TERM $pid; "
                f"while kill -0 $pid 2>/dev/null; do sleep {POLL}; done; rm -f {base}/temp/catalina.pid")
    tmp = _sh(client, "mktemp -d").strip()
    sftp = client.open_sftp()
    try:
        sftp.put(str(war), f"{tmp}/jw.war")
    finally:
        sftp.close()
    _sh(client, f"install -o tomcat -g tomcat -m 0644 {tmp}/jw.war {base}/webapps/.jw.war.new && "
                f"mv -f {base}/webapps/.jw.war.new {base}/webapps/jw.war && rm -rf {tmp}")
    started = time.perf_counter()
    _sh(client, f"cd {base} && setsid -w runuser -u tomcat -- {env} {home}/bin/catalina.sh start </dev/null")
    url = shlex.quote(f"http://{node['address']}:{node['http_port']}{context}{web.ANON_PATH}")
    _sh(client, f"end=$(( $(date +%s) + 240 )); until curl -s -m 10 {url} | grep -qF roleAnonymous; do "
                f"[ $(date +%s) -lt $end ] || exit 1; sleep {POLL}; done")
    answered = time.perf_counter() - started
    balancer.set_disabled(route, False)
    return answered


def run(inventory: dict, war: Path) -> tuple[float, dict[str, float], float]:
    """Roll the WAR onto every app server, one at a time; (seconds in all, seconds per node, seconds of them from
    the start commands to Joget's answers)."""
    t0 = time.perf_counter()
    balancer = Balancer(inventory)
    per_node, starts = {}, 0.0
    for node in (n for n in inventory["nodes"] if "app_server" in n["roles"]):
        n0 = time.perf_counter()
        client = connect(inventory, node["name"])
        try:
            starts += roll_one(node, client, balancer, war, inventory.get("context_path", "/jw"))
        finally:
            client.close()
        per_node[node["name"]] = time.perf_counter() - n0
    return time.perf_counter() - t0, per_node, starts
