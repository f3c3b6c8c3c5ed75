"""The per-app-server workload that every tool of the deployment benchmark runs, and the hosts' reset.

On each app server: server.xml (Debian's, 7 KB) gets the node's jvmRoute and a <Cluster>; /etc/hosts gets
the node's name on its own address; setenv.sh is written; a 1 MB jw.war is copied and its sha256
checked; a 0.5 s restart stand-in runs; a last command verifies the result. The console runs it as its
real steps (replication.server_xml, replication.hosts, joget.setenv, joget.war) plus `bench.restart`
(benchmarks/bench_steps.py); Fabric and Ansible run the same work (fabric_floor.py, ansible/).
"""

from __future__ import annotations

import hashlib
import random
import shlex
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BASE = "/opt/joget/tomcat-base"  # the testbed inventory's catalina_base
SERVER_XML = f"{BASE}/conf/server.xml"
SETENV = f"{BASE}/bin/setenv.sh"
WAR = f"{BASE}/webapps/jw.war"
STOCK_SERVER_XML = "/etc/tomcat10/server.xml"  # Debian's tomcat10 package: 7 KB
RESTART = "sleep 0.5"  # Tomcat's restart, stood in for: the same on every tool
CONSOLE_STEPS = ["replication.server_xml", "replication.hosts", "joget.setenv", "joget.war", "bench.restart"]
TEMPLATES = Path(__file__).resolve().parent / "ansible"


def verify_command(hostname: str, route: str) -> str:
    """What every tool checks last: the node's route in server.xml, its name resolving, the WAR there."""
    q = shlex.quote
    route_attr = f'jvmRoute="{route}"'
    return (f"grep -qF {q(route_attr)} {SERVER_XML} && getent hosts {q(hostname)} >/dev/null "
            f"&& test -s {WAR} && test -x {SETENV}")


def render(template: str, route: str) -> bytes:
    """The Ansible templates, rendered without Jinja (they hold one variable): what the console writes."""
    return (TEMPLATES / template).read_text().replace("{{ jvm_route }}", route).encode()


def make_war(path: Path, size: int = 1 << 20) -> str:
    """A 1 MB WAR whose web.xml already has <distributable/> (so the console sends it as it is);
    the same bytes every time. Returns its sha256."""
    blob = random.Random(1).randbytes(size)  # incompressible, like a real WAR's jars
    web_xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee" '
               'version="5.0">\n  <distributable/>\n</web-app>\n')
    with zipfile.ZipFile(path, "w") as z:
        for name, data in (("WEB-INF/web.xml", web_xml.encode()), ("WEB-INF/lib/payload.jar", blob)):
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            z.writestr(info, data, compress_type=zipfile.ZIP_STORED)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def app_hosts(inventory: dict) -> list[dict]:
    return [n for n in inventory["nodes"] if "app_server" in n["roles"]]


def reset_script(name: str) -> str:
    """Put an app server back as it was before the workload: stock server.xml in the base, Debian's
    /etc/hosts, no setenv.sh, no WAR, no backups, no leftovers of any tool."""
    q = shlex.quote
    hosts_file = f"127.0.0.1\\tlocalhost\\n127.0.1.1\\t{name}\\n\\n::1     localhost ip6-localhost ip6-loopback\\n" \
                 "ff02::1 ip6-allnodes\\nff02::2 ip6-allrouters\\n"
    return "; ".join([
        "set -e",
        f"mkdir -p {BASE}/conf {BASE}/bin {BASE}/webapps {BASE}/logs {BASE}/temp",
        f"rm -rf {BASE}/conf/server.xml.* {BASE}/bin/setenv.sh* {BASE}/webapps/* {BASE}/webapps/.jw.war*",
        "rm -f /etc/hosts.* /etc/.ansible_tmp* 2>/dev/null || true",
        f"cp {STOCK_SERVER_XML} {SERVER_XML}",
        f"printf {q(hosts_file)} > /etc/hosts",
        f"chown -R tomcat:tomcat {BASE}",
        f"chmod 0640 {SERVER_XML}",
        "rm -rf /root/.ansible /tmp/jcc-* /tmp/floor-* /tmp/ansible* 2>/dev/null || true",
    ])


def reset_hosts(testbed, inventory: dict) -> None:
    """Without SSH (nsenter), in parallel; not part of any timing."""
    def one(node):
        r = testbed.host_exec(node["name"], reset_script(node["name"]), timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"reset of {node['name']} failed: {r.stderr.strip()}")

    with ThreadPoolExecutor(8) as ex:
        list(ex.map(one, app_hosts(inventory)))


def check_hosts(testbed, inventory: dict, war_sha: str) -> None:
    """After a tool ran: every app server holds the planned result (a tool that skipped work would be fast)."""
    for node in app_hosts(inventory):
        name, route = node["name"], node["jvm_route"]
        script = (f"{verify_command(name, route)} && sha256sum {WAR} && getent hosts {shlex.quote(name)} "
                  f"&& grep -c SimpleTcpCluster {SERVER_XML} && grep -c 'wflow.name={route}' {SETENV}")
        r = testbed.host_exec(name, script, timeout=60)
        lines = r.stdout.split("\n")
        if (r.returncode != 0 or lines[0].split()[0] != war_sha or lines[1].split()[0] != node["address"]
                or lines[2].strip() != "2"):  # the stock file's commented-out <Cluster>, and ours
            raise RuntimeError(f"{name} does not hold the workload's result: {r.stdout.strip()} {r.stderr.strip()}")
