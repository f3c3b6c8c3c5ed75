"""Load balancer (guide step 7) and post-deployment test (step 9).

Unit tests render the site and parse Apache's files without SSH (one also runs the real
`apache2 -t` on the rendered site, in a temp dir). The full tests deploy Apache on the testbed's
lb in front of Python stand-ins on app1/app2 (not Tomcat: these tests are about the balancer).
The stand-ins answer like the stand-in WAR (currentUsername, /jw/testbed/session with a
`.nodeNN` session cookie) and keep sessions in the shared wflow dir, which emulates replication.
They run on their own port and CATALINA_BASE, so they never meet a real Tomcat of the testbed.
"""

import http.client
import subprocess
import time
from pathlib import Path

import pytest

from deployments.steps import StepContext, StepFailed, post_test
from deployments.steps import load_balancer as lbstep
from nodes.models import Cluster, LoadBalancer, Node

# -- unit tests: rendering and parsing ----------------------------------------------------------------


def _cluster(**lb_kwargs):
    cluster = Cluster(name="prod", context_path="/jw")
    lb = LoadBalancer(cluster=cluster, http_port=80, site_name="jwsite", sticky_cookie="JSESSIONID", **lb_kwargs)
    members = [Node(name="app1", address="10.1.0.11", http_port=8080, jvm_route="node01"),
               Node(name="app2", address="10.1.0.12", http_port=8081, jvm_route="node02")]
    return cluster, lb, members


def test_site_is_httpd_24_syntax_with_one_member_per_app_server():
    cluster, lb, members = _cluster(manager_allow="10.1.0.1")
    site = lbstep.render_site(cluster, lb, members, listen=False)
    assert 'BalancerMember "http://10.1.0.11:8080/jw" route=node01' in site
    assert 'BalancerMember "http://10.1.0.12:8081/jw" route=node02' in site
    assert 'ProxyPass "/jw" "balancer://prod" stickysession=JSESSIONID|jsessionid' in site
    assert 'ProxyPassReverse "/jw" "balancer://prod"' in site
    assert "<VirtualHost *:80>" in site and "Listen" not in site
    assert "Require all granted" in site
    manager = site.split('<Location "/balancer-manager">')[1].split("</Location>")[0]
    assert "SetHandler balancer-manager" in manager and "Require ip 10.1.0.1" in manager
    for old in ("Order ", "Allow from", "Deny from", "NameVirtualHost"):
        assert old not in site


def test_site_options_cookie_port_listen_ipv6_and_manager_default():
    cluster, lb, members = _cluster()
    lb.sticky_cookie, lb.http_port = "JOGETSID", 8000
    members[1].address = "fd00::12"
    site = lbstep.render_site(cluster, lb, members, listen=True)
    assert site.splitlines()[2] == "Listen 8000" and "<VirtualHost *:8000>" in site
    assert "stickysession=JOGETSID|jogetsid" in site
    assert 'BalancerMember "http://[fd00::12]:8081/jw" route=node02' in site
    assert "Require ip 127.0.0.1" in site  # no manager_allow: loopback only
    lb.manager_allow = "console.example.com"
    assert "Require host console.example.com" in lbstep.render_site(cluster, lb, members, listen=True)


def test_rendered_site_passes_apache2_configtest(tmp_path):
    if not Path("/usr/sbin/apache2").exists():
        pytest.skip("apache2 is not installed here")
    cluster, lb, members = _cluster(manager_allow="10.1.0.1")
    (tmp_path / "site.conf").write_text(lbstep.render_site(cluster, lb, members, listen=True))
    mods = "/usr/lib/apache2/modules"
    # Only the modules the steps enable (plus the MPM): mod_access_compat is absent, so Order/Allow would fail.
    loads = [f"LoadModule {m}_module {mods}/mod_{m}.so" for m in ("mpm_event", "authz_core", *lbstep.MODULES)]
    (tmp_path / "httpd.conf").write_text("\n".join([
        f"ServerRoot {tmp_path}", f"PidFile {tmp_path}/httpd.pid", f"ErrorLog {tmp_path}/error.log",
        f"Define APACHE_LOG_DIR {tmp_path}", *loads, f"Include {tmp_path}/site.conf", ""]))
    r = subprocess.run(["/usr/sbin/apache2", "-t", "-f", str(tmp_path / "httpd.conf")], capture_output=True,
                       text=True, env={"PATH": "/usr/sbin:/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert "Syntax OK" in r.stderr


def test_listened_ports_skip_our_site_and_conditional_listens():
    grep = "\n".join([
        "/etc/apache2/ports.conf:Listen 80",
        "/etc/apache2/ports.conf:<IfModule ssl_module>",
        "/etc/apache2/ports.conf:\tListen 443",
        "/etc/apache2/ports.conf:</IfModule>",
        "/etc/apache2/sites-enabled/other.conf:Listen 10.0.0.5:8443 https",
        "/etc/apache2/sites-enabled/jwsite.conf:Listen 8000",
    ])
    assert lbstep.listened_ports(grep, "/etc/apache2/sites-enabled/jwsite.conf") == {80, 8443}


def test_default_site_shadows_only_on_its_port():
    conf = b"<VirtualHost *:80>\n\tDocumentRoot /var/www/html\n</VirtualHost>\n"
    assert lbstep.default_site_shadows(conf, 80)
    assert not lbstep.default_site_shadows(conf, 8000)
    assert not lbstep.default_site_shadows(None, 80)


def test_post_test_uses_tomcat_tools_control(monkeypatch):
    from deployments.steps import tomcat_tools as tomcat

    asked = []
    monkeypatch.setattr(tomcat, "running_pid", lambda ctx, node: None)
    monkeypatch.setattr(tomcat, "http_check", lambda ctx, node, path: asked.append(path) or 200)
    ctx = StepContext(cluster=Cluster(name="c", context_path="/jw"), node=None, conn=None, log=print,
                      emit=print, connect=None)
    control = post_test.tomcat_control(ctx)
    assert control["stop"] is tomcat.stop and control["start"] is tomcat.start
    assert control["is_running"](ctx, None) is False
    assert control["http_check"](ctx, None) is True and asked == ["/jw/web/json/workflow/currentUsername"]


class _FakeClient:
    """Answers like real Joget: a login page that starts a session, a form login that renews it."""

    def __init__(self):
        self.logged_in = ""

    def request(self, method, path, *, session="", form=None):
        if path == "/j_spring_security_check":
            if form == {"j_username": "admin", "j_password": "pw"}:
                self.logged_in = "NEW1.node02"
                return post_test.Reply(302, "", "/jw/web/console/home", self.logged_in)
            return post_test.Reply(302, "", "/jw/web/login?login_error=1", "BAD.node01")
        if path == post_test.ANON_PATH:
            user = "admin" if session and session == self.logged_in else "roleAnonymous"
            return post_test.Reply(200, f'{{"username":"{user}"}}')
        if path == "/web/login":
            return post_test.Reply(200, "<form>", "", "" if session.startswith("NEW") else "FRESH.node01")
        return post_test.Reply(404, "")


def test_login_session_for_real_joget():
    bad = post_test.LoginSession(_FakeClient(), "admin", "wrong")
    with pytest.raises(ValueError, match="login as admin through the balancer failed"):
        bad.login()
    session = post_test.LoginSession(_FakeClient(), "admin", "pw")
    assert session.login() == "NEW1.node02"
    assert session.hit() == ("node02", None, "HTTP 200 username=admin")
    check, node = post_test.check_sticky(session)
    assert check.ok and node == "node02" and check.seen == "5 requests on node02, as admin (Joget login)"
    assert session.answering_node("node01") == "node01"
    session.client.logged_in = "gone"  # the session was lost (no replication)
    assert post_test.check_failover(session, "node02").ok is False


def test_post_test_helpers():
    assert post_test.route_of("A1B2C3.node01") == "node01" and post_test.route_of("A1B2") == ""
    assert post_test.session_from(["JSESSIONID=AB12.node02; Path=/jw; HttpOnly"], "JSESSIONID") == "AB12.node02"
    assert post_test.session_from(["other=1; Path=/"], "JSESSIONID") == ""
    assert post_test.brief("<html><head>\n<title>503 Service\n Unavailable</title>") == "503 Service Unavailable"
    assert post_test.brief("node=node01 count=1 db=ok\nmore") == "node=node01 count=1 db=ok"
    assert post_test.count_range([1, 2, 3, 4, 5]) == "1-5" and post_test.count_range([1, 1, 2]) == "1,1,2"
    check = post_test.Check("sticky", True, "5 requests on node01, counts 1-5")
    assert check.as_change().description == "✓ sticky: 5 requests on node01, counts 1-5"
    assert post_test.Check("failover", False, "x").line == "✗ failover: x"


# -- full tests: Apache on the testbed's lb, Python stand-ins behind it --------------------------------

STANDIN_PORTS = (18080, 18081)  # the site uses the first; the second lets a test move a member
STANDIN_BASE = "/opt/joget/standin-base"
FAKE_HOME = "/opt/joget/fake-tomcat"
PIDFILE = f"{STANDIN_BASE}/standin.pid"

STANDIN_PY = r'''
import http.server, os, re, sys, threading, uuid
args = dict(a.split("=", 1) for a in sys.argv[1:] if not a.startswith("-D"))
ROUTE, SHARED = args["route"], args["sessions"]
open(args["pidfile"], "w").write(str(os.getpid()))

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/jw/web/json/workflow/currentUsername":
            self.reply('{"username":"roleAnonymous"}', "application/json;charset=UTF-8")
        elif self.path == "/jw/testbed/session":
            self.session()
        else:
            self.reply("not found", status=404)

    def session(self):
        # Sessions in the shared wflow dir emulate replication; a flag file makes them private to the node.
        # A flag file in the shared dir makes replication late, once: a session's later changes stay
        # private to its node, and the node that takes the session over reads the first copy (then clears the flag).
        private = "/opt/joget/private-sessions"
        stale = os.path.join(SHARED, "standin-stale-once")  # in a directory of the service user, who removes it
        late = os.path.exists(stale)
        where = private if os.path.exists("/opt/joget/standin-private") else SHARED
        os.makedirs(where, exist_ok=True)
        os.makedirs(private, exist_ok=True)
        m = re.search(r"JSESSIONID=([A-Za-z0-9.]+)", self.headers.get("Cookie", ""))
        sid, count, new = (m.group(1) if m else ""), 1, True
        found = [d for d in ([private, SHARED] if late else [where]) if sid and os.path.exists(os.path.join(d, sid))]
        if found:
            count, new = int(open(os.path.join(found[0], sid)).read()) + 1, False
            if late and found[0] == SHARED and not sid.endswith("." + ROUTE):
                os.remove(stale)
                late = False  # from here on the shared copy is the session again
        else:
            sid = uuid.uuid4().hex.upper() + "." + ROUTE
        if late and count > 1:
            where = private
        with open(os.path.join(where, sid + ".tmp"), "w") as fh:
            fh.write(str(count))
        os.replace(os.path.join(where, sid + ".tmp"), os.path.join(where, sid))
        cookie = {"Set-Cookie": f"JSESSIONID={sid}; Path=/jw; HttpOnly"} if new else {}
        self.reply(f"node={ROUTE} count={count} db=ok\n", headers=cookie)

    def reply(self, text, ctype="text/plain", status=200, headers=None):
        data = text.encode()
        self.send_response(status)
        for k, v in {"Content-Type": ctype, "Content-Length": str(len(data)), **(headers or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass

servers = [http.server.ThreadingHTTPServer(("0.0.0.0", int(p)), Handler) for p in args["ports"].split(",")]
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
servers[0].serve_forever()
'''

FAKE_CATALINA = """#!/bin/sh
# Fake catalina.sh for the load balancer tests: `start` runs the Python stand-in, detached, as a process
# named java with -Dcatalina.base in its argv (what the console's Tomcat control looks for); `stop` ends it.
case "$1" in
start)
  setsid {home}/bin/java {home}/standin.py -Dcatalina.base="$CATALINA_BASE" route={route} ports={ports} \\
    sessions=/opt/joget/wflow/standin-sessions pidfile={pidfile} </dev/null >>"$CATALINA_BASE/logs/catalina.out" 2>&1 &
  echo "Tomcat started.";;
stop) [ -f "$CATALINA_PID" ] && kill "$(cat "$CATALINA_PID")"; exit 0;;
*) exit 2;;
esac
"""


def _start_standin(tb, host):
    env = f"CATALINA_HOME={FAKE_HOME} CATALINA_BASE={STANDIN_BASE}"
    tb.host_exec(host, f"cd {STANDIN_BASE} && runuser -u tomcat -- env {env} {FAKE_HOME}/bin/catalina.sh start",
                 check=True)
    address = tb.address(host)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            _get(address, STANDIN_PORTS[1], "/jw/web/json/workflow/currentUsername")
            return
        except OSError:
            time.sleep(0.1)
    log = tb.host_exec(host, f"cat {STANDIN_BASE}/logs/catalina.out").stdout
    pytest.fail(f"stand-in on {host} did not answer: {log}")


def _stop_standin(tb, host):
    tb.host_exec(host, f"[ -f {PIDFILE} ] && kill $(cat {PIDFILE}) 2>/dev/null; rm -f {PIDFILE}; true")


@pytest.fixture(scope="module")
def standins(full_testbed):
    """A Python stand-in on each app server, started like Tomcat (fake catalina.sh), stopped at the end."""
    tb = full_testbed
    for host in tb.app_servers:
        route = tb.node(host)["jvm_route"]
        # The stand-in runs as the service user, like Tomcat: its base and session directories are that user's.
        tb.host_exec(host, f"mkdir -p {FAKE_HOME}/bin {STANDIN_BASE}/temp {STANDIN_BASE}/logs "
                           "/opt/joget/private-sessions /opt/joget/wflow/standin-sessions; "
                           f"chown -R tomcat:tomcat {STANDIN_BASE} /opt/joget/private-sessions "
                           "/opt/joget/wflow/standin-sessions; rm -f /opt/joget/standin-private; "
                           f"ln -sfn \"$(command -v python3)\" {FAKE_HOME}/bin/java; "
                           f"cat > {FAKE_HOME}/standin.py", input=STANDIN_PY, check=True)
        script = FAKE_CATALINA.format(home=FAKE_HOME, route=route, ports=",".join(map(str, STANDIN_PORTS)),
                                      pidfile=PIDFILE)
        tb.host_exec(host, f"cat > {FAKE_HOME}/bin/catalina.sh && chmod 755 {FAKE_HOME}/bin/catalina.sh",
                     input=script, check=True)
        _stop_standin(tb, host)
        _start_standin(tb, host)
    yield tb
    for host in tb.app_servers:
        _stop_standin(tb, host)
    tb.host_exec("lb", "[ -f /run/apache2/apache2.pid ] && kill $(cat /run/apache2/apache2.pid); true")


@pytest.fixture
def cluster(standins, celery_worker_process):
    from nodes.inventory import load_inventory

    inv = dict(standins)
    inv["artifacts"] = []
    c = load_inventory(inv, replace=True)
    c.app_servers().update(http_port=STANDIN_PORTS[0], catalina_home=FAKE_HOME, catalina_base=STANDIN_BASE)
    return c


def _finished(dep, timeout=120):
    from tests.conftest import wait_for

    def done():
        dep.refresh_from_db()
        return not dep.is_active
    wait_for(done, timeout=timeout, message=f"{dep} to finish")
    return dep


LB_STEPS = ["load_balancer.server", "load_balancer.site"]


def _deploy(cluster, steps=LB_STEPS, **kwargs):
    from deployments import engine

    dep = _finished(engine.start(cluster, steps=steps, **kwargs))
    return dep, {r.step: r for r in dep.runs.all()}


def _failure(dep):
    from deployments.models import LogLine

    lines = LogLine.objects.filter(run__deployment=dep).order_by("run_id", "seq").values_list("text", flat=True)
    return "\n".join([f"{r.step}: {r.status} {r.message}" for r in dep.runs.all()] + list(lines)[-40:])


def _bare_lb(tb):
    """The lb as Debian installs it: Apache stopped, the proxy modules off, 000-default on, no site."""
    tb.host_exec("lb", "[ -f /run/apache2/apache2.pid ] && kill $(cat /run/apache2/apache2.pid) && sleep 0.5; "
                       "rm -f /etc/apache2/sites-available/jwsite.conf* /etc/apache2/sites-enabled/jwsite.conf; "
                       "a2dismod -q -f proxy_balancer proxy_http lbmethod_byrequests slotmem_shm headers proxy; "
                       "a2ensite -q 000-default; true", check=True)


def _get(host, port, path, cookie="", source="", full=False):
    """(status, body), or with full=True (status, body, the JSESSIONID it set)."""
    conn = http.client.HTTPConnection(host, port, timeout=10, source_address=(source, 0) if source else None)
    try:
        conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        resp = conn.getresponse()
        body = resp.read().decode()
        if full:
            return resp.status, body, post_test.session_from(resp.headers.get_all("Set-Cookie") or [], "JSESSIONID")
        return resp.status, body
    finally:
        conn.close()


def _node_of(body):
    return body.split()[0].removeprefix("node=")


def _lb(tb):
    return tb.address("lb"), tb["load_balancer"]["http_port"]


@pytest.mark.full
@pytest.mark.django_db(transaction=True)
def test_bare_lb_gets_apache_and_the_site_and_a_second_run_changes_nothing(cluster, standins):
    from deployments.models import StepRun

    tb = standins
    _bare_lb(tb)
    dep, runs = _deploy(cluster)
    assert dep.status == "succeeded", _failure(dep)
    assert runs["load_balancer.server"].status == StepRun.Status.CHANGED
    assert runs["load_balancer.site"].status == StepRun.Status.CHANGED
    assert any("a2dissite" in c["description"] or "000-default" in c["description"]
               for c in runs["load_balancer.site"].changes)

    site = tb.host_exec("lb", "cat /etc/apache2/sites-available/jwsite.conf").stdout
    for app in tb.app_servers:
        route = tb.node(app)["jvm_route"]
        assert f'BalancerMember "http://{tb.address(app)}:{STANDIN_PORTS[0]}/jw" route={route}' in site
    assert "stickysession=JSESSIONID|jsessionid" in site and "Order" not in site
    assert f"Require ip {tb['load_balancer']['manager_allow']}" in site
    assert "Listen" not in site  # ports.conf listens on 80 already
    enabled = tb.host_exec("lb", "ls /etc/apache2/sites-enabled /etc/apache2/mods-enabled").stdout.split()
    assert "jwsite.conf" in enabled and "000-default.conf" not in enabled
    assert {f"{m}.load" for m in lbstep.MODULES} <= set(enabled)
    test = tb.host_exec("lb", "apache2ctl configtest")
    assert test.returncode == 0 and "Syntax OK" in test.stderr

    again, runs = _deploy(cluster)
    assert again.status == "succeeded", _failure(again)
    assert {r.status for r in runs.values()} == {StepRun.Status.OK}


@pytest.mark.full
@pytest.mark.django_db(transaction=True)
def test_balancer_spreads_new_sessions_keeps_routes_and_guards_the_manager(cluster, standins):
    tb = standins
    dep, _ = _deploy(cluster)
    assert dep.status == "succeeded", _failure(dep)
    host, port = _lb(tb)

    fresh = [_node_of(_get(host, port, "/jw/testbed/session")[1]) for _ in range(10)]
    assert set(fresh) == {"node01", "node02"}, fresh
    sticky = [_get(host, port, "/jw/testbed/session", cookie="JSESSIONID=0FF1CE.node01") for _ in range(10)]
    assert [_node_of(body) for _, body in sticky] == ["node01"] * 10
    # A real session: its count goes on, on the same node.
    _, body, sid = _get(host, port, "/jw/testbed/session", cookie="JSESSIONID=0FF1CE.node02", full=True)
    assert body.startswith("node=node02 count=1") and sid.endswith(".node02")
    bodies = [_get(host, port, "/jw/testbed/session", cookie=f"JSESSIONID={sid}")[1].split()[:2] for _ in range(3)]
    assert bodies == [["node=node02", "count=2"], ["node=node02", "count=3"], ["node=node02", "count=4"]]

    # The console's address (the bridge, this process) may use balancer-manager; another host may not.
    allowed = tb["load_balancer"]["manager_allow"]
    status, page = _get(host, port, "/balancer-manager", source=allowed)
    assert status == 200 and "balancer://" in page
    denied = tb.host_exec("app1", f"curl -s -o /dev/null -w '%{{http_code}}' http://{host}:{port}/balancer-manager")
    assert denied.stdout == "403"


@pytest.mark.full
@pytest.mark.django_db(transaction=True)
def test_changed_member_port_shows_in_dry_run_then_reloads(cluster, standins):
    from deployments.models import StepRun

    tb = standins
    dep, _ = _deploy(cluster)
    assert dep.status == "succeeded", _failure(dep)
    host, port = _lb(tb)
    app2 = cluster.app_servers().get(name="app2")
    app2.http_port = STANDIN_PORTS[1]
    app2.save()
    pid_before = tb.host_exec("lb", "cat /run/apache2/apache2.pid").stdout

    dry, runs = _deploy(cluster, dry_run=True)
    site_run = runs["load_balancer.site"]
    assert site_run.status == StepRun.Status.CHANGED and runs["load_balancer.server"].status == StepRun.Status.OK
    diff = next(c["diff"] for c in site_run.changes if c["path"].endswith("jwsite.conf"))
    addr = tb.address("app2")
    assert f'-        BalancerMember "http://{addr}:{STANDIN_PORTS[0]}/jw" route=node02 retry=10' in diff
    assert f'+        BalancerMember "http://{addr}:{STANDIN_PORTS[1]}/jw" route=node02 retry=10' in diff
    assert f":{STANDIN_PORTS[1]}/jw" not in tb.host_exec("lb", "cat /etc/apache2/sites-available/jwsite.conf").stdout

    dep, runs = _deploy(cluster)
    assert dep.status == "succeeded", _failure(dep)
    assert runs["load_balancer.site"].status == StepRun.Status.CHANGED
    assert "reload" in runs["load_balancer.site"].message
    # Reloaded, not restarted: the same parent process now balances to the new port.
    assert tb.host_exec("lb", "cat /run/apache2/apache2.pid").stdout == pid_before
    page = _get(host, port, "/balancer-manager", source=tb["load_balancer"]["manager_allow"])[1]
    assert f"http://{addr}:{STANDIN_PORTS[1]}/jw" in page
    assert f"http://{addr}:{STANDIN_PORTS[0]}/jw" not in page
    backups = tb.host_exec("lb", "ls /etc/apache2/sites-available").stdout
    assert "jwsite.conf.bak-" in backups


@pytest.mark.full
@pytest.mark.django_db(transaction=True)
def test_a_broken_configuration_is_undone_and_apache_keeps_serving(cluster, standins):
    tb = standins
    dep, _ = _deploy(cluster)
    assert dep.status == "succeeded", _failure(dep)
    site_before = tb.host_exec("lb", "cat /etc/apache2/sites-available/jwsite.conf").stdout
    # A module the site needs disappears behind the console's back: the configtest of the next change fails.
    tb.host_exec("lb", "a2dismod -q -f proxy_balancer lbmethod_byrequests", check=True)
    app2 = cluster.app_servers().get(name="app2")
    app2.http_port = STANDIN_PORTS[1]
    app2.save()
    dep, runs = _deploy(cluster, steps=["load_balancer.site"])
    assert dep.status == "failed"
    assert "configtest failed" in runs["load_balancer.site"].message
    assert tb.host_exec("lb", "cat /etc/apache2/sites-available/jwsite.conf").stdout == site_before
    host, port = _lb(tb)
    assert _get(host, port, "/jw/web/json/workflow/currentUsername")[0] == 200  # still the old configuration


@pytest.mark.full
@pytest.mark.django_db(transaction=True)
def test_an_existing_balancer_is_only_checked_over_http(cluster, standins):
    from deployments.models import LogLine, StepRun

    dep, _ = _deploy(cluster)
    assert dep.status == "succeeded", _failure(dep)
    LoadBalancer.objects.filter(cluster=cluster).update(mode="existing")
    dep, runs = _deploy(cluster)
    assert dep.status == "succeeded", _failure(dep)
    assert list(runs) == ["load_balancer.site"]  # no server step for a balancer the admin runs
    site = runs["load_balancer.site"]
    assert site.node is None and site.status == StepRun.Status.OK
    assert LogLine.objects.filter(run=site, text__contains="through the existing balancer").exists()


# -- post_test, in this process against the stand-ins ----------------------------------------------


class _Ctx:
    """A StepContext for the cluster (node None) over real SSH, its log kept in a list."""

    def __init__(self, cluster):
        from nodes.ssh import open_connection

        self.lines, self.conns = [], {}

        def connect(node):
            if node.pk not in self.conns:
                self.conns[node.pk] = open_connection(node).open()
            return self.conns[node.pk]

        self.ctx = StepContext(cluster=cluster, node=None, conn=None, log=self.lines.append,
                               emit=lambda stream, line: self.lines.append(line), connect=connect)

    def close(self):
        for c in self.conns.values():
            c.close()


@pytest.fixture
def deployed(cluster):
    dep, _ = _deploy(cluster)
    assert dep.status == "succeeded", _failure(dep)
    return cluster


def _run_post_test(cluster):
    run = _Ctx(cluster)
    try:
        step = post_test.PostDeploymentTest()
        assert step.probe(run.ctx) == []
        started = time.monotonic()
        try:
            step.verify(run.ctx)
            error = None
        except StepFailed as exc:
            error = exc
        return run.lines, error, time.monotonic() - started
    finally:
        run.close()


@pytest.mark.full
@pytest.mark.django_db(transaction=True)
def test_post_test_sees_sticky_sessions_failover_and_rejoin(deployed, standins):
    tb = standins
    pids = {h: tb.host_exec(h, f"cat {PIDFILE}").stdout for h in tb.app_servers}
    lines, error, _ = _run_post_test(deployed)
    print("\n".join(lines))  # the checklist, for -rP
    assert error is None, "\n".join(lines)
    checks = [line for line in lines if line[:1] in "✓✗–"]
    assert [c.split(":")[0] for c in checks] == ["✓ /jw answers", "✓ sticky", "✓ failover", "✓ rejoin"]
    sticky = checks[1]
    assert "5 requests on node0" in sticky and sticky.endswith("counts 1-5")
    holder = sticky.split(" on ")[1].split(",")[0]
    other = "node02" if holder == "node01" else "node01"
    assert checks[2] == f"✓ failover: {holder} stopped; the session went on on {other}, counts 6-8"
    # The stopped stand-in was started again (a new process) and the other one was left alone.
    stopped_host = "app1" if holder == "node01" else "app2"
    now = {h: tb.host_exec(h, f"cat {PIDFILE}").stdout for h in tb.app_servers}
    assert now[stopped_host] != pids[stopped_host]
    assert [now[h] == pids[h] for h in tb.app_servers if h != stopped_host] == [True]


@pytest.mark.full
@pytest.mark.django_db(transaction=True)
def test_post_test_names_the_failed_check_and_restarts_the_node(deployed, standins):
    tb = standins
    for host in tb.app_servers:  # sessions no longer shared: as if replication were off
        tb.host_exec(host, "touch /opt/joget/standin-private")
    try:
        lines, error, _ = _run_post_test(deployed)
    finally:
        for host in tb.app_servers:
            tb.host_exec(host, "rm -f /opt/joget/standin-private")
    assert error is not None and str(error).startswith("post-deployment test: failover failed:")
    assert "was not replicated" in str(error)
    assert any(line.startswith("✓ sticky") for line in lines)
    assert any(line.startswith("✓ rejoin") for line in lines), "the stopped node must be started again"
    for host in tb.app_servers:
        assert _get(tb.address(host), STANDIN_PORTS[0], "/jw/web/json/workflow/currentUsername")[0] == 200


@pytest.mark.full
@pytest.mark.django_db(transaction=True)
def test_late_replication_gets_one_second_try_and_both_findings_are_shown(deployed, standins):
    tb = standins
    flag = "/opt/joget/wflow/standin-sessions/standin-stale-once"
    tb.host_exec(tb.app_servers[0], f"touch {flag}", check=True)
    try:
        lines, error, _ = _run_post_test(deployed)
    finally:
        tb.host_exec(tb.app_servers[0], f"rm -f {flag}")
    print("\n".join(lines))
    assert error is None, "\n".join(lines)
    first = next(line for line in lines if line.startswith("✗ failover, first try:"))
    assert "answered with counts 2-4, expected 6-8" in first
    assert any("trying failover once more with a new session" in line for line in lines)
    final = next(line for line in lines if line.startswith("✓ failover:"))
    assert final.endswith("counts 6-8 (second try; the first: " + first.split("first try: ")[1] + ")")
    assert [line.split(":")[0] for line in lines if line.startswith("✓ rejoin")] == ["✓ rejoin", "✓ rejoin"]
    # The flag was used up by the first try (the second ran with replication working).
    assert tb.host_exec(tb.app_servers[0], f"test -e {flag}").returncode != 0


@pytest.mark.full
@pytest.mark.django_db(transaction=True)
def test_post_test_plans_nothing_so_a_dry_run_and_a_healthy_plan_say_ok(deployed):
    from deployments.models import StepRun

    dep, runs = _deploy(deployed, steps=["post_test"], dry_run=True)
    assert dep.status == "succeeded" and runs["post_test"].status == StepRun.Status.OK
    assert runs["post_test"].changes == []

