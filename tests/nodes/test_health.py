"""Node health checks (nodes/health/): pure parsers and checks, the recorded states and events, the
notifications, retention, and end to end on the full testbed: a Tomcat, a host's sshd and the database
are stopped, each shows on the status pages and in the events within one interval, and so does the recovery.

Services on the testbed are started here with host_exec, independently of the deployment steps:
- MariaDB on db (mariadb-install-db, then mariadbd bound to db's address), with the inventory's database/user;
- a Tomcat stand-in on app1 and app2: python3 http.server on :8080 answering Joget's currentUsername JSON,
  whose command line is a Tomcat's (`python3 /opt/jcc-standin.py -Dcatalina.base=<base> ...
  org.apache.catalina.startup.Bootstrap start`): the "Tomcat process" check looks for a process whose
  arguments hold `org.apache.catalina.startup.Bootstrap` and exactly `-Dcatalina.base=<the node's base>`.
  It writes catalina.out lines as Tomcat does (start, `Replication member added:[...]` per peer) and adds
  itself to servers.json (a bare array of names, Joget's and the stand-in WAR's format), removing itself on SIGTERM;
- Apache on lb: a balancer with one member per app server (route = jvmRoute, retry=1) and balancer-manager
  allowed from the console's address (the bridge), as the load-balancer step writes it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse
from django.utils import timezone

from nodes import health
from nodes.health import Gathered, Manager, NodeJob, Probe, Verdict
from nodes.inventory import load_inventory
from nodes.models import (
    CheckState,
    Cluster,
    HealthEvent,
    HealthRun,
    HealthSample,
    Node,
    NodeHealth,
    SharedDatabase,
)
from nodes.ssh import Target
from tests.conftest import wait_for

S = health.HealthState

# ---- helpers shared with benchmarks/status_page.py -----------------------------------------------------------

STANDIN = r'''
import json, os, signal, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
opts = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("-D") and "=" in a)
base, wflow, name = opts["catalina.base"], opts["wflow.home"], opts["wflow.name"]
addr, peers = opts["standin.address"], [p for p in opts.get("standin.peers", "").split(",") if p]
os.makedirs(base + "/logs", exist_ok=True)


def servers(change):
    path = wflow + "/servers.json"
    try:
        with open(path) as fh:
            names = json.load(fh)
    except (OSError, ValueError):
        names = []
    tmp = path + ".tmp-" + name
    with open(tmp, "w") as fh:
        json.dump(change(names), fh)
    os.replace(tmp, path)


def member(ip):
    dotted = ", ".join(ip.split("."))
    return "org.apache.catalina.tribes.membership.MemberImpl[tcp://{%s}:4000,{%s},4000, alive=1000]" % (dotted, dotted)


with open(base + "/logs/catalina.out", "a") as log:
    log.write("INFO [main] org.apache.catalina.startup.VersionLoggerListener.log Server version name: stand-in\n")
    log.write("INFO [main] org.apache.catalina.core.StandardService.startInternal Starting service [Catalina]\n")
    for p in peers:
        log.write("INFO [Membership-MemberAdded.] org.apache.catalina.ha.tcp.SimpleTcpCluster.memberAdded "
                  "Replication member added:[%s]\n" % member(p))
servers(lambda names: sorted(set(names) | {name}))


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/jw/web/json/workflow/currentUsername"):
            body, ctype = b'{"username":"roleAnonymous"}', "application/json;charset=UTF-8"
        else:
            body, ctype = b"stand-in", "text/plain"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def stop(*_):
    servers(lambda names: [n for n in names if n != name])
    os._exit(0)


signal.signal(signal.SIGTERM, stop)
ThreadingHTTPServer((addr, 8080), Handler).serve_forever()
'''


def wait_port(address: str, port: int, open_: bool = True, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((address, port), timeout=0.5).close()
            is_open = True
        except OSError:
            is_open = False
        if is_open == open_:
            return
        time.sleep(0.05)
    raise AssertionError(f"{address}:{port} still {'closed' if open_ else 'open'} after {timeout} s")


def start_tomcat_standin(tb, host: str, *, base: str, wflow: str, name: str, address: str, peers=()) -> None:
    tb.host_exec(host, "cat > /opt/jcc-standin.py", input=STANDIN, check=True)
    argv = ["python3", "/opt/jcc-standin.py", f"-Dcatalina.base={base}", f"-Dwflow.home={wflow}",
            f"-Dwflow.name={name}", f"-Dstandin.address={address}", f"-Dstandin.peers={','.join(peers)}",
            "org.apache.catalina.startup.Bootstrap", "start"]
    tb.host_exec(host, f"setsid {shlex.join(argv)} </dev/null >/dev/null 2>&1 &", check=True)
    wait_port(address, 8080)


def stop_tomcat_standin(tb, host: str, address: str) -> None:
    tb.host_exec(host, "pkill -TERM -f '[j]cc-standin.py'")
    wait_port(address, 8080, open_=False)


def start_app_standins(tb, inventory: dict, hosts=None) -> None:
    apps = [n for n in inventory["nodes"] if "app_server" in n["roles"]]
    tb.host_exec(apps[0]["name"], ["mkdir", "-p", inventory["wflow_home"]], check=True)
    for n in apps:
        if hosts is None or n["name"] in hosts:
            peers = [p["address"] for p in apps if p is not n]
            start_tomcat_standin(tb, n["name"], base=n["catalina_base"], wflow=inventory["wflow_home"],
                                 name=n["jvm_route"], address=n["address"], peers=peers)


def start_mariadb(tb, inventory: dict, *, install: bool = True) -> None:
    address = node_address(inventory, "db")
    if install:
        r = tb.host_exec("db", "mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db "
                               ">/var/log/mariadb-install.log 2>&1 || { tail -5 /var/log/mariadb-install.log; "
                               "exit 1; }")
        assert r.returncode == 0, r.stdout + r.stderr
    tb.host_exec("db", f"setsid mariadbd --user=mysql --bind-address={address} </dev/null >/var/log/mysqld.log 2>&1 &",
                 check=True)
    wait_port(address, 3306)
    if install:
        d = inventory["shared_database"]
        password = "'" + d["password"].replace("\\", "\\\\").replace("'", "\\'") + "'"
        sql = (f"CREATE DATABASE IF NOT EXISTS `{d['name']}`; "
               f"CREATE USER IF NOT EXISTS '{d['user']}'@'%' IDENTIFIED BY {password}; "
               f"GRANT ALL ON `{d['name']}`.* TO '{d['user']}'@'%';")
        r = tb.host_exec("db", ["mariadb", "-uroot", "-e", sql])
        assert r.returncode == 0, r.stderr


def stop_mariadb(tb, inventory: dict) -> None:
    tb.host_exec("db", "pkill -TERM -x mariadbd")
    wait_port(node_address(inventory, "db"), 3306, open_=False)


# Apache keeps a failed member in error for `retry` seconds (the load-balancer step writes 10). Not 0: with 0
# every request clears the error flag before it tries the member again, so balancer-manager flickers.
APACHE_RETRY = 1


def start_balancer(tb, inventory: dict) -> None:
    apps = [n for n in inventory["nodes"] if "app_server" in n["roles"]]
    name, lb = inventory["cluster"], inventory["load_balancer"]
    members = "\n".join(f'    BalancerMember "http://{n["address"]}:{n["http_port"]}/jw" route={n["jvm_route"]} '
                        f"retry={APACHE_RETRY}" for n in apps)
    site = (f'<VirtualHost *:{lb["http_port"]}>\n  <Proxy "balancer://{name}">\n{members}\n'
            f'    ProxySet lbmethod=byrequests\n  </Proxy>\n'
            f'  ProxyPass "/jw" "balancer://{name}" stickysession=JSESSIONID|jsessionid\n'
            f'  ProxyPassReverse "/jw" "balancer://{name}"\n'
            f'  <Location "/balancer-manager">\n    SetHandler balancer-manager\n'
            f'    Require ip {lb["manager_allow"]}\n  </Location>\n</VirtualHost>\n')
    r = tb.host_exec("lb", "cat > /etc/apache2/sites-available/jwsite.conf && "
                           "a2enmod -q proxy proxy_http proxy_balancer lbmethod_byrequests slotmem_shm >/dev/null && "
                           "a2dissite -q 000-default; a2ensite -q jwsite >/dev/null && "
                           'mkdir -p "$(readlink -f /var/lock)" && apache2ctl restart 2>/dev/null', input=site)
    assert r.returncode == 0, r.stdout + r.stderr
    wait_port(node_address(inventory, "lb"), lb["http_port"])


def stop_services(tb, inventory: dict) -> None:
    """Leave the session's testbed as this module found it: other modules deploy on the same hosts."""
    wflow = shlex.quote(inventory["wflow_home"])
    for n in inventory["nodes"]:
        if "app_server" in n["roles"]:
            base = shlex.quote(n["catalina_base"])
            tb.host_exec(n["name"], "pkill -TERM -f '[j]cc-standin.py'")  # alone: the next line names the file
            tb.host_exec(n["name"], f"rm -f /opt/jcc-standin.py {base}/logs/catalina.out {wflow}/servers.json "
                                    f"{wflow}/servers.json.tmp-*; rmdir {base}/logs {base} {wflow} 2>/dev/null; true")
    tb.host_exec("db", "pkill -TERM -x mariadbd; for i in $(seq 50); do pgrep -x mariadbd >/dev/null || break; "
                       "sleep 0.1; done; rm -rf /var/lib/mysql/* /var/log/mysqld.log /var/log/mariadb-install.log")
    tb.host_exec("lb", "apache2ctl stop 2>/dev/null; a2dissite -q jwsite >/dev/null 2>&1; "
                       "rm -f /etc/apache2/sites-available/jwsite.conf; a2ensite -q 000-default >/dev/null 2>&1; true")


def node_address(inventory: dict, name: str) -> str:
    return next(n["address"] for n in inventory["nodes"] if n["name"] == name)


class Webhook:
    """A small HTTP server on 127.0.0.1 that keeps every JSON document POSTed to it."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict]:
        return [e for doc in self.received for e in doc["events"]]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def notify_settings(settings, webhook):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.HEALTH_ALERT_EMAIL = ["ops@example.com"]
    settings.HEALTH_WEBHOOK_URL = webhook.url
    return settings


# ---- pure: parsers ------------------------------------------------------------------------------------------

# As Apache 2.4 (Debian 12) prints it, trimmed of its style sheet; node02 edited to Err.
MANAGER_PAGE = """<html><head><title>Balancer Manager</title></head>
<body><h1>Load Balancer Manager for 10.213.221.10</h1>
<h3>LoadBalancer Status for <a href="/balancer-manager?b=prod&amp;nonce=7d">balancer://prod</a> [p772f91ab_prod]</h3>
<table><tr><th>MaxMembers</th><th>StickySession</th><th>DisableFailover</th><th>Timeout</th><th>FailoverAttempts</th>
<th>Method</th><th>Path</th><th>Active</th></tr>
<tr><td>2 [2 Used]</td><td>JSESSIONID|jsessionid</td><td>Off</td><td>0</td><td>1</td><td>byrequests</td><td>/jw</td>
<td>Yes</td></tr></table><br />
<table><tr><th>Worker URL</th><th>Route</th><th>RouteRedir</th><th>Factor</th><th>Set</th><th>Status</th>
<th>Elected</th><th>Busy</th><th>Load</th><th>To</th><th>From</th></tr>
<tr>
<td><a href="/balancer-manager?b=prod&amp;w=http://10.0.0.101:8080/jw&amp;nonce=7d">http://10.0.0.101:8080/jw</a></td>
<td>node01</td><td></td><td>1.00</td><td>0</td><td>Init Ok </td><td>1</td><td>0</td><td>-100</td>
<td>238 </td><td> 43 </td></tr>
<tr>
<td><a href="/balancer-manager?b=prod&amp;w=http://10.0.0.102:8080/jw&amp;nonce=7d">http://10.0.0.102:8080/jw</a></td>
<td>node02</td><td></td><td>1.00</td><td>0</td><td>Init Err </td><td>0</td><td>0</td><td>100</td>
<td>  0 </td><td>  0 </td></tr>
</table><hr /></body></html>"""


def test_balancer_manager_member_table_is_parsed():
    members = health.parse_balancer_manager(MANAGER_PAGE)
    assert set(members) == {"node01", "node02"}
    assert members["node01"] == {"url": "http://10.0.0.101:8080/jw", "status": "Init Ok", "balancer": "balancer://prod",
                                 "busy": 0, "elected": 1}
    assert health.member_state(members["node02"]["status"]) == S.BAD
    assert health.parse_balancer_manager("<html><table><tr><th>x</th></tr></table></html>") == {}


@pytest.mark.parametrize("status,state", [("Init Ok", S.OK), ("Init Err", S.BAD), ("Init Dis", S.WARN),
                                          ("Init Drn", S.WARN), ("Init Ok HcFl", S.BAD), ("Init", S.UNKNOWN)])
def test_member_status_words(status, state):
    assert health.member_state(status) == state


def test_replication_members_since_the_last_start():
    added = "x memberAdded Replication member added:[org.apache...MemberImpl[tcp://{10, 0, 0, %d}:4000,"
    gone = "x Received member disappeared:[org.apache...MemberImpl[tcp://{10, 0, 0, %d}:4000,{10, 0, 0, %d}]]"
    lines = [added % 102, "Starting service [Catalina]", added % 103, added % 104, gone % (104, 104)]
    assert health.replication_members(lines) == {"10.0.0.103:4000"}
    assert health.replication_members([added % 102]) is None  # no start seen: cannot tell


def test_servers_json_formats():
    assert health.parse_servers_json('{"servers":["node01","node02"]}') == ["node01", "node02"]
    assert health.parse_servers_json('["node01"]') == ["node01"]
    assert health.parse_servers_json('{"nodes": 3}') is None
    assert health.parse_servers_json("not json") is None


def test_gather_script_finds_only_the_nodes_own_tomcat(tmp_path):
    """Run the script with bash -c as the SSH server does: the script's own command line (which names the
    Tomcat main class) must not count as a Tomcat, a Tomcat of another CATALINA_BASE neither."""
    wflow, base = tmp_path / "wflow", tmp_path / "base"
    (base / "logs").mkdir(parents=True)
    wflow.mkdir()
    (wflow / "servers.json").write_text('{"servers": ["node01"]}\n')
    (base / "logs" / "catalina.out").write_text(
        "Starting service [Catalina]\nnoise\nReplication member added:[MemberImpl[tcp://{10, 0, 0, 2}:4000,]]\n")
    node = NodeJob(1, "app1", "127.0.0.1", ("app_server",), "node01", 8080, str(base), "", Target("127.0.0.1"))
    script = health.gather_script(node, str(wflow), db_node=True, lb_node=False)

    def run():
        out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=20)
        assert out.returncode == 0, out.stderr
        return health.parse_gather(out.stdout, str(base))

    facts = run()
    assert "tomcat_pid" not in facts
    assert facts["servers_json"] == '{"servers": ["node01"]}'
    assert int(facts["wflow_free_kb"]) > 0 and 0 <= int(facts["mem_pct"]) <= 100 and "load1" in facts
    assert int(facts["cpus"]) == os.cpu_count() and 0 <= int(facts["disk_pct"]) <= 100
    assert facts["repl"][0] == "Starting service [Catalina]" and len(facts["repl"]) == 2
    assert facts["db_process"] in ("0", "1")

    def fake_tomcat(catalina_base):
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                                 f"-Dcatalina.base={catalina_base}", "-Dwflow.name=node01",
                                 "org.apache.catalina.startup.Bootstrap", "start"])

    other, mine = fake_tomcat(f"{base}-other"), None
    try:
        assert "tomcat_pid" not in run()
        mine = fake_tomcat(str(base))
        facts = run()
        assert facts["tomcat_pid"] == str(mine.pid) and facts["wflow_name"] == "node01"
        assert int(facts["tomcat_uptime"]) >= 0
    finally:
        for p in (other, mine):
            if p:
                p.kill()
                p.wait()


def test_cpu_count_from_the_online_list():
    assert health.count_cpus("0-3,8-11") == 8 and health.count_cpus("0") == 1 and health.count_cpus("") == 1


def test_gather_script_quotes_paths():
    node = NodeJob(1, "a", "x", ("app_server",), "node01", 8080, "/opt/a b;reboot", "", Target("x"))
    script = health.gather_script(node, "/opt/$(id)", db_node=False, lb_node=False)
    assert "B='/opt/a b;reboot'" in script and "W='/opt/$(id)'" in script


# ---- pure: one function per check ---------------------------------------------------------------------------

APP = NodeJob(1, "app1", "10.0.0.101", ("app_server",), "node01", 8080, "/opt/joget/tomcat-base",
              "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl", Target("x"))


def facts(**kw):
    return Gathered(ok=True, ssh_ms=40, facts={"repl": [], "cpus": "2", "load1": "0.5", "mem_pct": "40",
                                                "disk_pct": "50", "wflow_free_kb": str(50 * 1024 * 1024),
                                                "tomcat_pid": "77", "tomcat_uptime": "4000", **kw})


def test_ssh_and_host_key_checks():
    assert health.judge_ssh(facts()).state == S.OK
    down = Gathered(error="app1: SSH failed: refused.", kind="unreachable")
    assert health.judge_ssh(down) == Verdict(S.BAD, "app1: SSH failed: refused.")
    assert health.judge_host_key(down, APP).state == S.UNKNOWN
    mismatch = Gathered(error="app1: the host key changed.", kind="mismatch")
    assert health.judge_ssh(mismatch).state == S.OK
    assert health.judge_host_key(mismatch, APP) == Verdict(S.BAD, "app1: the host key changed.")
    assert health.judge_host_key(facts(), APP).detail.startswith("matches the pinned key SHA256:")
    assert health.judge_ssh(Gathered(error="no key", kind="unpinned")).state == S.UNKNOWN


def test_resource_checks_and_thresholds():
    assert health.judge_load(facts(load1="2.9")) == Verdict(S.OK, "load 2.90 on 2 CPU(s)")
    assert health.judge_load(facts(load1="3.2")).state == S.WARN
    assert health.judge_load(facts(load1="7")).state == S.BAD
    assert health.judge_memory(facts(mem_pct="91")) == Verdict(S.WARN, "memory 91% used")
    assert health.judge_disk(facts(disk_pct="96")).state == S.BAD
    assert health.judge_wflow(facts(wflow_free_kb="512000"), "/w") == Verdict(S.WARN, "500 MB free in /w")
    assert health.judge_wflow(facts(wflow_missing="1"), "/w").state == S.BAD
    assert health.judge_memory(Gathered(kind="unreachable")).state == S.UNKNOWN


def test_tomcat_replication_and_servers_json_checks():
    assert health.judge_tomcat(facts(), APP) == Verdict(S.OK, "pid 77, up 1 h 6 min")
    no_tomcat = facts(tomcat_pid="")
    assert health.judge_tomcat(no_tomcat, APP).detail == "no Tomcat process with -Dcatalina.base=/opt/joget/tomcat-base"
    repl = ["Starting service [Catalina]", "Replication member added:[X[tcp://{10, 0, 0, 102}:4000,]]"]
    assert health.judge_replication(facts(repl=repl), 1).state == S.OK
    assert health.judge_replication(facts(repl=repl), 2).state == S.WARN
    assert health.judge_replication(no_tomcat, 1).state == S.UNKNOWN
    assert health.judge_replication(no_tomcat, 0).state == S.OK
    assert health.judge_servers_json(facts(), APP, ["node01"], True).state == S.OK
    assert health.judge_servers_json(facts(), APP, ["node02"], True).detail == "not listed: Joget sees node02"
    assert "stale" in health.judge_servers_json(no_tomcat, APP, ["node01"], True).detail
    assert health.judge_servers_json(facts(), APP, None, True).state == S.UNKNOWN
    assert health.judge_servers_json(facts(), APP, None, False).state == S.WARN


def test_http_balancer_and_database_checks():
    assert health.judge_http(Probe(True, 12, 200, "HTTP 200")) == Verdict(S.OK, "HTTP 200")
    assert health.judge_http(Probe(True, 2500, 200, "HTTP 200")).state == S.WARN
    assert health.judge_http(Probe(False, detail="refused")).state == S.BAD
    manager = Manager(members=health.parse_balancer_manager(MANAGER_PAGE))
    assert health.judge_balancer_member(APP, manager).state == S.OK
    node2 = NodeJob(**{**APP.__dict__, "jvm_route": "node02"})
    assert health.judge_balancer_member(node2, manager).state == S.BAD
    node3 = NodeJob(**{**APP.__dict__, "jvm_route": "node03"})
    assert health.judge_balancer_member(node3, manager).state == S.WARN
    assert health.judge_balancer_member(APP, Manager(error="balancer-manager: HTTP 403")).state == S.UNKNOWN
    assert health.judge_balancer(Probe(True, 3, 200, "HTTP 200"), Manager(error="refused"), None).state == S.WARN
    db_down = Gathered(ok=True, facts={"db_process": "0"})
    result = health.judge_database(Probe(False, detail="db:3306: Connection refused"), db_down)
    assert result == Verdict(S.BAD, "db:3306: Connection refused; no mariadbd/mysqld process on the node")
    assert health.judge_database(Probe(True, 3, detail="reached", partial=True), None).state == S.WARN


def test_mysql_greeting_is_parsed():
    nonce1, nonce2 = b"abcdefgh", b"ijklmnopqrst\0"
    greeting = (b"\x0a" + b"10.11.6-MariaDB\0" + b"\x01\0\0\0" + nonce1 + b"\0" + b"\xff\xf7" + b"\x2d" + b"\x02\0"
                + b"\xff\x81" + bytes([21]) + b"\0" * 10 + nonce2 + b"mysql_native_password\0")
    assert health.parse_greeting(greeting) == ("10.11.6-MariaDB", b"abcdefghijklmnopqrst", "mysql_native_password")
    with pytest.raises(health.MySQLError, match="1130"):
        health.parse_greeting(b"\xff\x6a\x04Host '10.0.0.1' is not allowed to connect")


# ---- recorded states, events, notifications, retention (database, no SSH) ------------------------------------


@pytest.fixture
def small_cluster(db):
    cluster = Cluster.objects.create(name="prod")
    app = Node.objects.create(cluster=cluster, name="app1", address="10.0.0.101", is_app_server=True,
                              jvm_route="node01")
    return cluster, app


def job_of(cluster) -> health.ClusterJob:
    return health.snapshot(cluster)


def test_states_change_only_on_change_and_raise_events(small_cluster):
    cluster, app = small_cluster
    job, t0 = job_of(cluster), timezone.now()
    row = {"level": 0, "up": True}
    events = health.record(job, t0, {(app.id, "ssh"): Verdict(S.OK, "in"),
                                     (app.id, "tomcat"): Verdict(S.BAD, "no process")}, {app.id: row})
    # A first "ok" is not news; a first "bad" is.
    assert [(e.key, e.old_state, e.new_state) for e in events] == [("tomcat", "", S.BAD)]
    t1 = t0 + timedelta(seconds=30)
    events = health.record(job, t1, {(app.id, "ssh"): Verdict(S.OK, "in again"),
                                     (app.id, "tomcat"): Verdict(S.OK, "pid 7")}, {app.id: row})
    assert [(e.key, e.old_state, e.new_state) for e in events] == [("tomcat", S.BAD, S.OK)]
    states = {s.key: s for s in CheckState.objects.filter(node=app)}
    assert states["ssh"].since == t0 and states["ssh"].detail == "in"  # unchanged: not rewritten
    assert states["tomcat"].since == t1 and states["tomcat"].detail == "pid 7"
    # A check that no longer applies (e.g. the role was removed) is dropped, without an event.
    events = health.record(job, t1 + timedelta(seconds=30), {(app.id, "ssh"): Verdict(S.OK, "")}, {app.id: row})
    assert events == [] and set(CheckState.objects.values_list("key", flat=True)) == {"ssh"}
    assert HealthSample.objects.filter(node=app).count() == 3
    assert NodeHealth.objects.get(node=app).details == {"ssh": ["ok", ""]}


def test_a_node_removed_during_the_cycle_is_skipped(small_cluster):
    cluster, app = small_cluster
    job = job_of(cluster)
    gone = Node.objects.create(cluster=cluster, name="app2", address="10.0.0.102", is_app_server=True,
                               jvm_route="node02")
    gone_id = gone.pk
    gone.delete()
    health.record(job, timezone.now(), {(app.id, "ssh"): Verdict(S.OK), (gone_id, "ssh"): Verdict(S.BAD)},
                  {app.id: {"level": 0, "up": True}, gone_id: {"level": 2, "up": False}})
    assert list(CheckState.objects.values_list("node_id", flat=True)) == [app.id]
    assert list(HealthSample.objects.values_list("node_id", flat=True)) == [app.id]


def test_cluster_level_state_without_a_node(small_cluster):
    cluster, app = small_cluster
    job = job_of(cluster)
    health.record(job, timezone.now(), {(None, "database"): Verdict(S.BAD, "refused")}, {})
    health.record(job, timezone.now(), {(None, "database"): Verdict(S.BAD, "refused")}, {})
    assert CheckState.objects.get(node=None).state == S.BAD
    assert HealthEvent.objects.filter(node=None).count() == 1


def event(cluster, node, key, old, new, detail=""):
    return HealthEvent(cluster=cluster, node=node, key=key, time=timezone.now(), old_state=old, new_state=new,
                       detail=detail)


def test_notifications_by_email_and_webhook(small_cluster, notify_settings, webhook, mailoutbox):
    cluster, app = small_cluster
    events = [event(cluster, app, "tomcat", S.OK, S.BAD, "no Tomcat process"),
              event(cluster, app, "replication", S.OK, S.UNKNOWN, "Tomcat is not running")]
    health.notify("prod", events, {app.id: "app1"})
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == ["ops@example.com"] and mail.subject.startswith("[prod] 1 health change(s), 1 failing")
    assert "app1 Tomcat process: ok -> bad: no Tomcat process" in mail.body and "replication" not in mail.body.lower()
    wait_for(lambda: webhook.received, timeout=5, message="the webhook POST")
    doc = webhook.received[0]
    assert doc["cluster"] == "prod"
    assert [(e["node"], e["check"], e["from"], e["to"]) for e in doc["events"]] == [("app1", "tomcat", "ok", "bad")]


def test_unknown_and_its_echo_are_not_sent(small_cluster, notify_settings, webhook, mailoutbox):
    cluster, app = small_cluster
    health.notify("prod", [event(cluster, app, "tomcat", S.UNKNOWN, S.OK)], {app.id: "app1"})
    assert mailoutbox == [] and webhook.received == []


def test_a_failing_webhook_or_mail_is_logged_not_raised(small_cluster, settings, caplog):
    cluster, app = small_cluster
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.HEALTH_WEBHOOK_URL = f"http://127.0.0.1:{port}/hook"
    settings.HEALTH_ALERT_EMAIL = ["ops@example.com"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 2
    with caplog.at_level(logging.WARNING, logger="nodes.health"):
        health.notify("prod", [event(cluster, app, "ssh", S.OK, S.BAD)], {app.id: "app1"})
    assert "health webhook" in caplog.text and "health e-mail" in caplog.text


def test_one_cycle_at_a_time_per_cluster(small_cluster, settings):
    cluster, _ = small_cluster
    now = timezone.now()
    assert health.claim(cluster.pk, now)
    assert not health.claim(cluster.pk, now + timedelta(seconds=5))
    # A worker that died mid-cycle: its lease runs out.
    assert health.claim(cluster.pk, now + timedelta(seconds=4 * settings.HEALTH_CHECK_INTERVAL + 1))


def test_retention_prunes_old_samples_and_events(small_cluster, settings):
    cluster, app = small_cluster
    settings.HEALTH_RETENTION_DAYS = 30
    now = timezone.now()
    times = [now - timedelta(days=31), now - timedelta(days=30, seconds=1), now - timedelta(days=29), now]
    HealthSample.objects.bulk_create([HealthSample(node=app, time=t, level=0, up=True) for t in times])
    HealthEvent.objects.bulk_create([HealthEvent(cluster=cluster, node=app, key="ssh", time=t, new_state=S.OK)
                                     for t in times])
    assert health.prune(now) == 2
    assert list(HealthSample.objects.order_by("time").values_list("time", flat=True)) == times[2:]
    assert HealthEvent.objects.count() == 2


# ---- end to end on the full testbed -------------------------------------------------------------------------


class Isolated(dict):
    """The testbed's inventory with this module's own paths (a CATALINA_BASE of its own, wflow home in a
    subdirectory of the shared one), and the testbed's helpers: the deployment tests' files stay untouched."""

    def __init__(self, testbed):
        inv = json.loads(json.dumps(dict(testbed)))
        inv["wflow_home"] = f"{inv['wflow_home']}/jcc-health-test"
        for n in inv["nodes"]:
            if "app_server" in n["roles"]:
                n["catalina_base"] = "/opt/jcc-health/tomcat-base"
        super().__init__(inv)
        self.testbed = testbed

    def __getattr__(self, name):
        return getattr(self.testbed, name)


@pytest.fixture(scope="module")
def health_testbed():
    """Hosts of their own: earlier modules' deployment steps leave the shared testbed's database and
    Apache in states these checks must not depend on."""
    from tests.testbed_plugin import _session_testbed

    yield from _session_testbed("health")


@pytest.fixture(scope="module")
def services(health_testbed):
    """MariaDB, Tomcat stand-ins and Apache, started once for this module's tests."""
    inv = Isolated(health_testbed)
    try:
        start_mariadb(inv, inv)
        start_app_standins(inv, inv)
        start_balancer(inv, inv)
        yield inv
    finally:
        stop_services(inv, inv)
        for host in health_testbed.app_servers:
            health_testbed.host_exec(host, "rmdir /opt/jcc-health 2>/dev/null; true")


@pytest.fixture
def tb_cluster(services, transactional_db):
    inv = dict(services)
    inv["artifacts"] = []
    return load_inventory(inv, replace=True)


def states_of(cluster, node_name) -> dict[str, str]:
    return dict(CheckState.objects.filter(cluster=cluster, node__name=node_name).values_list("key", "state"))


def cycle(cluster, settings) -> health.CycleReport:
    report = health.run_cycle(cluster.pk)
    assert report is not None
    # The promise: a change shows within one interval. The cycle must fit in it.
    assert report.seconds < settings.HEALTH_CHECK_INTERVAL, f"cycle took {report.seconds:.1f} s"
    return report


def page(client, url: str) -> str:
    r = client.get(url)
    assert r.status_code == 200
    return r.content.decode()


STABLE = ("ssh", "host_key", "wflow", "tomcat", "http", "balancer_route", "balancer_member", "replication",
          "servers_json", "balancer", "database")  # not load, memory, disk: shared with whatever else runs here


SLOW_IS_FINE = ("ssh", "http", "balancer_route")  # "warn" there means slow, which a busy machine may be


def assert_all_ok(cluster):
    bad = [(s.node.name if s.node else "-", s.key, s.state, s.detail)
           for s in CheckState.objects.filter(cluster=cluster, key__in=STABLE).select_related("node")
           if s.state != S.OK and not (s.key in SLOW_IS_FINE and s.state == S.WARN)]
    assert bad == [], bad


@pytest.mark.full
def test_stopped_tomcat_shows_within_one_interval_and_recovers(tb_cluster, services, settings, notify_settings,
                                                                webhook, mailoutbox, admin_client):
    cluster = tb_cluster
    cycle(cluster, settings)
    assert_all_ok(cluster)
    assert states_of(cluster, "app1").keys() >= {"tomcat", "http", "balancer_route", "balancer_member",
                                                  "replication", "servers_json", "wflow"}
    status_url = reverse("nodes:cluster_status", args=[cluster.name])
    page(admin_client, status_url)  # the admin's last look, before anything breaks
    mails = len(mailoutbox)  # a first look may have mailed about load on this shared machine

    stop_tomcat_standin(services, "app1", node_address(services, "app1"))
    # app2's Tomcat would log the member leaving; the stand-in does not, so write what Tomcat writes.
    dotted = ", ".join(node_address(services, "app1").split("."))
    services.host_exec("app2", f"echo 'INFO Received member disappeared:[MemberImpl[tcp://{{{dotted}}}:4000,]]' "
                               ">> /opt/jcc-health/tomcat-base/logs/catalina.out")
    report = cycle(cluster, settings)
    app1 = states_of(cluster, "app1")
    assert app1["tomcat"] == S.BAD and app1["http"] == S.BAD and app1["balancer_member"] == S.BAD
    assert app1["servers_json"] == S.WARN  # the stopped stand-in removed itself from servers.json
    assert app1["balancer_route"] == S.OK  # the balancer fails the sticky request over to node02
    assert states_of(cluster, "app2")["replication"] == S.WARN
    assert states_of(cluster, "app2")["tomcat"] == S.OK
    changed = {(e.node.name, e.key, e.old_state, e.new_state) for e in report.events}
    assert ("app1", "tomcat", "ok", "bad") in changed and ("app1", "balancer_member", "ok", "bad") in changed

    # Pages: the cluster at a glance, what changed since the last look, the node's own page.
    html = page(admin_client, status_url)
    assert 'data-node="app1" data-state="bad"' in html and "Changed since your last look" in html
    assert 'data-event="tomcat"' in html and "no Tomcat process with -Dcatalina.base=" in html
    assert "Nothing changed." in page(admin_client, status_url)  # this look was the last one
    node_html = page(admin_client, reverse("nodes:node_status", args=[cluster.name, "app1"]))
    assert 'data-check="tomcat" data-state="bad"' in node_html and 'data-check="ssh" data-state="ok"' in node_html
    # Notifications: one e-mail and one webhook document for this cycle.
    assert len(mailoutbox) == mails + 1 and "app1 Tomcat process: ok -> bad" in mailoutbox[-1].body
    sent = {(e["node"], e["check"], e["to"]) for e in webhook.events()}
    assert ("app1", "tomcat", "bad") in sent and ("app1", "http", "bad") in sent

    start_app_standins(services, services, hosts=["app1"])
    services.host_exec("app2", f"echo 'INFO Replication member added:[MemberImpl[tcp://{{{dotted}}}:4000,]]' "
                               ">> /opt/jcc-health/tomcat-base/logs/catalina.out")
    time.sleep(APACHE_RETRY + 0.2)  # until Apache tries the member again
    report = cycle(cluster, settings)
    app1 = states_of(cluster, "app1")
    assert app1["tomcat"] == app1["http"] == app1["balancer_member"] == app1["servers_json"] == S.OK
    assert ("app1", "tomcat", "bad", "ok") in {(e.node.name, e.key, e.old_state, e.new_state) for e in report.events}
    assert ("app1", "tomcat", "ok") in {(e["node"], e["check"], e["to"]) for e in webhook.events()}
    assert len(mailoutbox) == mails + 2 and "app1 Tomcat process: bad -> ok" in mailoutbox[-1].body
    assert states_of(cluster, "app2")["replication"] == S.OK
    assert_all_ok(cluster)
    html = page(admin_client, status_url)
    app1_row = re.search(r'<tr data-node="app1".*?</tr>', html).group(0)
    # Not "not bad": the load check follows whatever else this machine runs.
    assert "Tomcat process" not in app1_row and "HTTP direct" not in app1_row and 'data-event="tomcat"' in html


@pytest.mark.full
def test_stopped_database_and_a_refused_login_show_and_recover(tb_cluster, services, settings, admin_client):
    cluster = tb_cluster
    cycle(cluster, settings)
    assert states_of(cluster, "db")["database"] == S.OK
    stop_mariadb(services, services)
    try:
        cycle(cluster, settings)
        state = CheckState.objects.get(cluster=cluster, key="database")
        assert state.state == S.BAD and "Connection refused" in state.detail and "no mariadbd" in state.detail
        assert HealthEvent.objects.filter(cluster=cluster, key="database", new_state=S.BAD).exists()
        html = page(admin_client, reverse("nodes:node_status", args=[cluster.name, "db"]))
        assert 'data-check="database" data-state="bad"' in html
        assert 'data-node="db" data-state="bad"' in page(admin_client, reverse("nodes:cluster_status",
                                                                                args=[cluster.name]))
    finally:
        start_mariadb(services, services, install=False)
    cycle(cluster, settings)
    assert CheckState.objects.get(cluster=cluster, key="database").state == S.OK
    assert HealthEvent.objects.filter(cluster=cluster, key="database", old_state=S.BAD, new_state=S.OK).exists()

    db = SharedDatabase.objects.get(cluster=cluster)
    db.password = "not-the-password"
    db.save()
    cycle(cluster, settings)
    assert "error 1045" in CheckState.objects.get(cluster=cluster, key="database").detail  # Access denied


@pytest.mark.full
def test_stopped_host_shows_within_one_interval_and_recovers(tb_cluster, services, settings, admin_client):
    cluster = tb_cluster
    cycle(cluster, settings)
    services.stop_host("app2")
    try:
        report = cycle(cluster, settings)
        app2 = states_of(cluster, "app2")
        assert app2["ssh"] == S.BAD and app2["http"] == S.BAD and app2["tomcat"] == S.UNKNOWN
        assert app2["balancer_member"] == S.BAD
        assert ("app2", "ssh", "ok", "bad") in {(e.node.name, e.key, e.old_state, e.new_state) for e in report.events}
        assert NodeHealth.objects.get(node__name="app2", node__cluster=cluster).up is False
        html = page(admin_client, reverse("nodes:cluster_status", args=[cluster.name]))
        assert 'data-node="app2" data-state="bad"' in html
        node_html = page(admin_client, reverse("nodes:node_status", args=[cluster.name, "app2"]))
        assert 'data-check="ssh" data-state="bad"' in node_html and "Connection refused" in node_html
    finally:
        services.start_host("app2")
        start_app_standins(services, services, hosts=["app2"])
    time.sleep(APACHE_RETRY + 0.2)
    cycle(cluster, settings)
    app2 = states_of(cluster, "app2")
    assert app2["ssh"] == app2["tomcat"] == app2["http"] == app2["balancer_member"] == S.OK
    assert HealthEvent.objects.filter(node__name="app2", key="ssh", old_state=S.BAD, new_state=S.OK).exists()
    assert_all_ok(cluster)


@pytest.mark.full
def test_beat_task_runs_the_cycle_on_the_real_worker(tb_cluster, celery_worker_process):
    from nodes import tasks

    cluster = tb_cluster
    tasks.run_health_checks.delay()
    run = wait_for(lambda: HealthRun.objects.filter(cluster=cluster, finished__isnull=False).first(), timeout=30,
                   message="the check cycle on the worker")
    assert run.error == "" and run.nodes == 4 and run.lease_until is None
    assert NodeHealth.objects.filter(node__cluster=cluster).count() == 4
    assert HealthSample.objects.filter(node__cluster=cluster).count() == 4
    assert_all_ok(cluster)


def test_standin_helpers_have_no_syntax_errors():
    compile(STANDIN, "jcc-standin.py", "exec")
