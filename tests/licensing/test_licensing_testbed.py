"""Licensing on the testbed: the stand-in Joget (nodes/testbed/standin.py) on Tomcat on app1 and app2.

The module starts its own Tomcat on each app server (CATALINA_BASE /opt/jcc-lic-base, the node's HTTP
port), independent of the deployment steps, and stops both at the end. Reads and activations run in the
real Celery worker (through the page, and the periodic task), or synchronously (the command). What an
admin would check: every node's key, each different and each the one that node computes for itself;
every request on the node's own address:port (the nodes' access logs show the console, never the
balancer); licenses activated on the node (the stand-in's license file on the share); a renamed
datasource profile voids the licenses, and the console says so on the cluster and deployments pages.
"""

import base64
import hashlib
import http.client
import io
import json
import re
import time
import urllib.parse

import pytest
from django.core.management import call_command
from django.urls import reverse

from licensing import services, tasks
from licensing.models import License
from nodes.testbed.standin import build_war
from tests.conftest import wait_for

pytestmark = [pytest.mark.full, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

BASE = "/opt/jcc-lic-base"
HOME = "/usr/share/tomcat10"
WFLOW = "/opt/joget/wflow"
ADMIN_PASSWORD = "Lic ens&e=#pw 1"  # spaces, & and = test the form encoding of the login
KEY_RE = re.compile(r"^EE-[0-9A-F]{32}$")
S = License.State

# A Tomcat left running by another module (e.g. the deployment steps' tests) may hold the port on these
# throw-away hosts: stop whatever listens there, so the answers come from this module's stand-in.
PREPARE = f"""set -e
if [ -f {BASE}/tomcat.pid ]; then kill -9 "$(cat {BASE}/tomcat.pid)" 2>/dev/null || true; fi
listeners() {{ ss -ltnpH 'sport = :%(port)d' | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u; }}
for p in $(listeners); do kill "$p" 2>/dev/null || true; done
for i in $(seq 50); do [ -z "$(listeners)" ] && break; sleep 0.2; done
for p in $(listeners); do kill -9 "$p" 2>/dev/null || true; done
rm -rf {BASE}; mkdir -p {BASE}/conf {BASE}/webapps {BASE}/logs {BASE}/temp {BASE}/work
cp -r {HOME}/etc/. {BASE}/conf/
sed -i -e '/<Listener className="org.apache.catalina.core.AprLifecycleListener"/d' \\
  -e 's/<Connector port="8080" protocol="HTTP\\/1.1"/<Connector port="%(port)d" protocol="HTTP\\/1.1"/' \\
  -e 's/prefix="localhost_access_log"/prefix="localhost_access_log" buffered="false"/' {BASE}/conf/server.xml
base64 -d > {BASE}/webapps/jw.war.tmp && mv {BASE}/webapps/jw.war.tmp {BASE}/webapps/jw.war
"""
# C1 JIT and the serial GC: a test WAR needs no peak performance, and the Tomcats boot ~2x faster on 2 cores.
JAVA_OPTS = f"-Dwflow.home={WFLOW} -Dwflow.name=%(route)s -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
START = (f"cd {BASE} && CATALINA_HOME={HOME} CATALINA_BASE={BASE} CATALINA_PID={BASE}/tomcat.pid "
         f"CATALINA_TMPDIR={BASE}/temp JAVA_OPTS='{JAVA_OPTS}' "
         f"setsid {HOME}/bin/catalina.sh start </dev/null >/dev/null 2>&1")
STOP = (f"p=$(cat {BASE}/tomcat.pid 2>/dev/null) || exit 0; kill \"$p\" 2>/dev/null; "
        "for i in $(seq 50); do kill -0 \"$p\" 2>/dev/null || exit 0; sleep 0.2; done; kill -9 \"$p\"")


def _http_up(address: str, port: int) -> bool:
    conn = http.client.HTTPConnection(address, port, timeout=2)
    try:
        conn.request("GET", "/jw/web/json/workflow/currentUsername")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _set_profile(tb, profile: str) -> None:
    tb.host_exec("app1", f"printf 'currentProfile=%s\\n' {profile} > {WFLOW}/app_datasource.properties", check=True)


@pytest.fixture(scope="module")
def tomcats(full_testbed, tmp_path_factory):
    """The stand-in on Tomcat on every app server, started in parallel, stopped at the end."""
    tb = full_testbed
    war = build_war(tmp_path_factory.mktemp("war") / "jw.war", version=tb["joget_version"])
    war_b64 = base64.b64encode(war.read_bytes()).decode()
    saved = tb.host_exec("app1", f"cat {WFLOW}/app_datasource.properties").stdout
    tb.host_exec("app1", f"printf 'username=admin\\npassword={ADMIN_PASSWORD}\\n' > {WFLOW}/standin-admin.properties",
                 check=True)
    _set_profile(tb, "default")
    apps = [tb.node(h) for h in tb.app_servers]
    try:
        for node in apps:
            tb.host_exec(node["name"], PREPARE % {"port": node["http_port"]}, input=war_b64, check=True)
            tb.host_exec(node["name"], START % {"route": node["jvm_route"]}, check=True)
        for node in apps:
            wait_for(lambda n=node: _http_up(n["address"], n["http_port"]), timeout=60, interval=0.3,
                     message=f"the stand-in on {node['name']}:{node['http_port']} "
                             f"({tb.host_exec(node['name'], f'tail -5 {BASE}/logs/catalina.out').stdout})")
        yield tb
    finally:
        for node in apps:
            tb.host_exec(node["name"], STOP)
        tb.host_exec("app1", f"rm -f {WFLOW}/standin-admin.properties {WFLOW}/license-*.txt")
        if saved:
            tb.host_exec("app1", f"cat > {WFLOW}/app_datasource.properties", input=saved)
        else:
            tb.host_exec("app1", f"rm -f {WFLOW}/app_datasource.properties")


@pytest.fixture
def cluster(tomcats, celery_worker_process):
    from nodes.inventory import load_inventory

    tb = tomcats
    # Each test starts with unlicensed nodes on the default profile (licenses live on the shared dir).
    tb.host_exec("app1", f"rm -f {WFLOW}/license-*.txt")
    _set_profile(tb, "default")
    inv = dict(tb)
    inv["artifacts"] = []
    c = load_inventory(inv, replace=True)
    c.joget_admin_password = ADMIN_PASSWORD
    c.save()
    return c


def _licenses(cluster) -> dict[str, License]:
    return {x.node.name: x for x in License.objects.filter(node__cluster=cluster).select_related("node")}


def _wait_idle(cluster, what, predicate=lambda x: True, timeout=60):
    def done():
        got = _licenses(cluster)
        return got if len(got) == 2 and all(not x.busy and predicate(x) for x in got.values()) else None
    return wait_for(done, timeout=timeout, interval=0.2, message=what)


def _expected_key(tb, host: str, profile: str) -> str:
    """The stand-in's algorithm (docs/standin.md), fed with the node's own MAC address."""
    mac = tb.host_exec(host, "cat /sys/class/net/eth0/address", check=True).stdout.strip().upper()
    return "EE-" + hashlib.sha256(f"{mac}|{profile}|8|enterprise".encode()).hexdigest().upper()[:32]


def _access_log_clients(tb, host: str) -> set[str]:
    """Remote addresses of the License page requests in the node's Tomcat access log."""
    out = tb.host_exec(host, f"cat {BASE}/logs/localhost_access_log.*.txt").stdout
    return {line.split()[0] for line in out.splitlines() if "/jw/web/console/setting/license" in line}


def test_keys_are_read_from_each_node_directly(cluster, admin_client, tomcats):
    tb = tomcats
    r = admin_client.post(reverse("licensing:read_keys", args=[cluster.name]))
    assert r.status_code == 302
    got = _wait_idle(cluster, "both keys read by the worker", lambda x: x.checked_at)
    lb, console = tb.address("lb"), tb["load_balancer"]["manager_allow"]  # the runner's bridge address
    for host in tb.app_servers:
        x, node = got[host], tb.node(host)
        assert x.read_error == "" and x.state == S.KEY_READ, x.read_error
        assert KEY_RE.match(x.system_key) and x.system_key == _expected_key(tb, host, "default")
        assert x.key_url == f"http://{node['address']}:{node['http_port']}/jw/web/console/setting/license"
        assert urllib.parse.urlsplit(x.key_url).hostname != lb
        assert (x.key_profile, x.key_profile_assumed) == ("default", False)  # read from the node over SSH
        # The node itself saw the request, from the console, not from the balancer.
        assert _access_log_clients(tb, host) == {console} and lb != console
    assert got["app1"].system_key != got["app2"].system_key

    page = admin_client.get(reverse("licensing:cluster_licenses", args=[cluster.name])).content.decode()
    for host in tb.app_servers:
        assert f'id="key-{host}">{got[host].system_key}</code>' in page
    csv_text = admin_client.get(reverse("licensing:export_csv", args=[cluster.name])).content.decode()
    assert all(got[h].system_key in csv_text for h in tb.app_servers)

    # The command reads them again, synchronously, through the same code.
    out = io.StringIO()
    call_command("system_keys", cluster.name, "--format", "json", "--refresh", stdout=out)
    assert json.loads(out.getvalue()) == [
        {"node": h, "address": tb.address(h), "system_key": got[h].system_key} for h in tb.app_servers]


def test_activation_through_the_page(cluster, admin_client, tomcats):
    tb = tomcats
    services.refresh_cluster(cluster)
    got = _licenses(cluster)
    key1 = got["app1"].system_key
    good = f"-----BEGIN JOGET LICENSE-----\n{key1}\nsigned-for-testbed-{time.time_ns()}\n-----END-----"
    # app1's license pasted into app2's box too (the mix-up the page must catch): app2 refuses it.
    for host, text in (("app1", good), ("app2", good)):
        r = admin_client.post(reverse("licensing:activate", args=[cluster.name, host]),
                              {f"n{got[host].pk}-license": text})
        assert r.status_code == 302
    got = _wait_idle(cluster, "both activations finished", lambda x: x.activation_tried_at)
    assert got["app1"].state == S.ACTIVATED and got["app1"].activated_key == key1
    assert got["app1"].licensed_on_node is True and got["app1"].activation_error == ""
    # On the node: the stand-in stored the license for app1's key, and only that one.
    files = tb.host_exec("app1", f"cd {WFLOW} && ls license-*.txt").stdout.split()
    assert files == [f"license-{key1}.txt"]
    assert tb.host_exec("app1", f"cat {WFLOW}/license-{key1}.txt").stdout.strip() == good
    assert got["app2"].state == S.REFUSED and got["app2"].license_text == ""
    assert got["app2"].activation_error.startswith("The node refused the license: Invalid license")
    page = admin_client.get(reverse("licensing:cluster_licenses", args=[cluster.name])).content.decode()
    assert good not in page and "signed-for-testbed" not in page
    assert services.mask_license(good) in page


def test_a_renamed_profile_changes_the_keys_and_voids_the_licenses(cluster, admin_client, tomcats):
    tb = tomcats
    before = {x.node.name: x.system_key for x in services.refresh_cluster(cluster)}
    lic1 = _licenses(cluster)["app1"]
    services.save_license(lic1, f"LICENSE {before['app1']} for app1")
    assert services.activate(lic1.pk).state == S.ACTIVATED
    assert services.profile_change_warning(cluster) is None

    _set_profile(tb, "renamed")  # what a careless edit of app_datasource.properties on the share does
    tasks.refresh_all_keys.delay()  # the periodic check, in the worker
    got = _wait_idle(cluster, "keys re-read after the profile change",
                     lambda x: x.system_key and x.system_key != before[x.node.name])
    for host in tb.app_servers:
        assert got[host].system_key == _expected_key(tb, host, "renamed")
        assert got[host].key_profile == "renamed" and got[host].previous_key == before[host]
    assert got["app1"].state == S.KEY_CHANGED and got["app1"].licensed_on_node is False
    assert got["app2"].state == S.KEY_READ  # never licensed: nothing was voided
    detail = admin_client.get(cluster.get_absolute_url()).content.decode()
    assert "License void on app1:" in detail
    warning = services.profile_change_warning(cluster)
    assert "profile 'renamed'" in warning and "set to 'default'" in warning
    deployments = admin_client.get(reverse("deployments:deployment_list", args=[cluster.name])).content.decode()
    assert 'id="license-profile-warning"' in deployments

    # Back to the profile the license was issued for: the same key, licensed again.
    _set_profile(tb, "default")
    got = {x.node.name: x for x in services.refresh_cluster(cluster)}
    assert got["app1"].system_key == before["app1"] and got["app1"].state == S.ACTIVATED
