"""Guide steps 3-6 end to end: from empty app servers to Joget (the stand-in) running on both with
session replication, through a real Celery worker and SSH; plus the pure renderers."""

import base64
import io
import json
import urllib.request
import zipfile
from pathlib import Path

import pytest
from jproperties import Properties

from deployments import engine
from deployments.models import Deployment, LogLine, StepRun
from deployments.steps import joget
from deployments.steps.toolbox import mask_properties
from nodes.inventory import load_inventory, register_artifact
from nodes.models import Cluster, Node, SharedDatabase
from tests.conftest import wait_for

S = StepRun.Status
STEPS = ["tomcat.install", "tomcat.base", "replication.server_xml", "replication.hosts", "joget.datasource",
         "joget.setenv", "joget.war", "joget.running", "replication.members"]
BASE = "/opt/joget/tomcat-base"
WFLOW = "/opt/joget/wflow"
AWKWARD = "tb'x \"y$z = : # ! \\ é 中 end"


# ---- pure -----------------------------------------------------------------------------------------


def _cluster(**kw):
    return Cluster(name="c", **kw)


def test_datasource_files_escape_like_java_and_read_back():
    c = _cluster(joget_version="8.1", datasource_profile="default")
    db = SharedDatabase(cluster=c, host="10.1.2.20", port=3306, name="jwdb", user="joget", password=AWKWARD)
    files = joget.datasource_files(c, db)
    assert files[f"{WFLOW}/app_datasource.properties"] == b"currentProfile=default\n"
    raw = files[f"{WFLOW}/app_datasource-default.properties"]
    text = raw.decode("iso-8859-1")
    # The shape of Joget DX 8's own app_datasource-default.properties.
    assert ("workflowUrl=jdbc\\:mysql\\://10.1.2.20\\:3306/jwdb?characterEncoding\\=UTF-8&useSSL\\=false"
            "&allowPublicKeyRetrieval\\=true&serverTimezone\\=UTC&passwordCharacterEncoding\\=UTF-8\n") in text
    assert "workflowDriver=com.mysql.cj.jdbc.Driver\n" in text and "profileName=\n" in text
    assert "workflowPassword=tb'x \"y$z \\= \\: \\# \\! \\\\ \\u00e9 \\u4e2d end\n" in text
    assert raw.isascii()
    props = Properties()
    props.load(raw, "iso-8859-1")
    assert props["workflowPassword"].data == AWKWARD and props["workflowUser"].data == "joget"
    # The diff shown to the admin never holds the password, escaped or not.
    shown = mask_properties(raw, joget.PASSWORD_KEYS)
    assert b"workflowPassword=********" in shown and b"tb'x" not in shown


def test_datasource_for_older_joget_and_ipv6_host():
    c = _cluster(joget_version="5.0.1", datasource_profile="prod")
    db = SharedDatabase(cluster=c, host="fd00::20", port=3307, name="jw5", user="u", password="p")
    files = joget.datasource_files(c, db)
    assert files[f"{WFLOW}/app_datasource.properties"] == b"currentProfile=prod\n"
    text = files[f"{WFLOW}/app_datasource-prod.properties"].decode()
    assert "workflowDriver=com.mysql.jdbc.Driver\n" in text
    assert "workflowUrl=jdbc\\:mysql\\://[fd00\\:\\:20]\\:3307/jw5?characterEncoding\\=UTF-8&useSSL\\=false" \
           "&allowPublicKeyRetrieval\\=true&passwordCharacterEncoding\\=UTF-8\n" in text
    assert [name for name, _ in joget.wars(c)] == ["jw.war", "jwdesigner.war"]
    assert [name for name, _ in joget.wars(_cluster(joget_version="8.1", context_path="/joget"))] == ["joget.war"]


def test_setenv_names_wflow_home_and_node():
    c = _cluster(wflow_home="/srv/wflow")
    text = joget.render_setenv(c, Node(cluster=c, address="10.0.0.5", jvm_route="node07"))
    assert 'CATALINA_OPTS="$CATALINA_OPTS -Dwflow.home=/srv/wflow -Dwflow.name=node07"' in text
    assert 'CATALINA_OPTS="$CATALINA_OPTS -DjvmRoute=node07"' in text
    assert "-Djava.net.preferIPv4Stack=true" in text and "-javaagent:/srv/wflow/wflow-cluster.jar" in text
    assert "preferIPv4Stack" not in joget.render_setenv(c, Node(cluster=c, address="fd00::5", jvm_route="n"))


def test_changed_files_from_fingerprints():
    old = "home /usr/share/tomcat10\naaa  /b/conf/server.xml\nbbb  /b/webapps/jw.war\nmissing /b/bin/setenv.sh\n"
    new = "home /usr/share/tomcat10\nccc  /b/conf/server.xml\nbbb  /b/webapps/jw.war\nddd  /b/bin/setenv.sh\n"
    assert joget._changed_files(old, new) == ["server.xml", "setenv.sh"]


# ---- end to end -----------------------------------------------------------------------------------



def _undistributable_standin(inventory: dict, dest: Path) -> Path:
    """The stand-in jw.war without <distributable/>, like real Joget's: the console must add it."""
    src = next(Path(a["path"]) for a in inventory["artifacts"] if a["kind"] == "jw_war")
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "WEB-INF/web.xml":
                assert b"<distributable/>" in data
                data = data.replace(b"<distributable/>", b"")
            zout.writestr(item, data)
    return dest


@pytest.fixture
def cluster(full_testbed, celery_worker_process, tmp_path):
    inv = dict(full_testbed)
    c = load_inventory(inv, replace=True)
    register_artifact(c, "jw_war", _undistributable_standin(inv, tmp_path / "jw.war"))
    return c


def deploy(cluster, steps=STEPS, timeout=480) -> Deployment:
    dep = engine.start(cluster, steps=steps)

    def done():
        dep.refresh_from_db()
        return not dep.is_active

    try:
        wait_for(done, timeout=timeout, interval=0.5, message=f"{dep} to finish")
    except pytest.fail.Exception:
        busy = LogLine.objects.filter(run__deployment=dep).exclude(run__status__in=StepRun.FINISHED)
        tail = "\n".join(f"{line.run}: {line.text[:200]}" for line in busy.order_by("time")[:200])
        pytest.fail(f"{dep} did not finish in {timeout} s:\n{explain(dep)}\n--- log of unfinished steps:\n{tail}")
    return dep


def statuses(dep) -> dict[tuple[str, str], str]:
    return {(r.step, r.node.name if r.node_id else "-"): r.status for r in dep.runs.select_related("node")}


def explain(dep) -> str:
    out = []
    for r in dep.runs.select_related("node"):
        out.append(f"{r.step} {r.node.name if r.node_id else '-'}: {r.status} {r.message[:300]}")
        if r.status == S.FAILED:
            last = list(r.lines.order_by("-seq").values_list("text", flat=True)[:25])
            out += [f"    | {t[:200]}" for t in reversed(last)]
    return "\n".join(out)


def get(url: str) -> tuple[str, dict]:
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - a testbed address
        return resp.read().decode(), dict(resp.headers)


def session_replicates(tb) -> str:
    """A session started on app1 goes on on app2 (its counter carries over): Tomcat replicated it."""
    body, headers = get(f"http://{tb.address('app1')}:8080/jw/testbed/session")
    assert body.startswith("node=node01 count=1 ")
    cookie = headers["Set-Cookie"].split(";")[0]

    def on_app2():
        req = urllib.request.Request(f"http://{tb.address('app2')}:8080/jw/testbed/session", headers={"Cookie": cookie})
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - a testbed address
            text = resp.read().decode()
        return text if " count=1 " not in text else None

    return wait_for(on_app2, timeout=20, interval=1, message="the session on app2")


def sh(tb, host, cmd) -> str:
    r = tb.host_exec(host, cmd)
    assert r.returncode == 0, f"{host}: {cmd}: {r.stderr}"
    return r.stdout


@pytest.mark.full
@pytest.mark.django_db(transaction=True)
def test_from_empty_app_servers_to_joget_running_with_replication(cluster, full_testbed):
    tb = full_testbed
    for host in ("app1", "app2"):
        assert sh(tb, host, f"test -e {BASE} && echo yes || echo no").strip() == "no"
    # A dry run first: every probe answers, with diffs, and nothing changes on the nodes.
    dry = engine.start(cluster, steps=STEPS, dry_run=True)
    wait_for(lambda: Deployment.objects.get(pk=dry.pk).status != "running", timeout=60, message="dry run")
    dry.refresh_from_db()
    assert dry.status == "succeeded", explain(dry)
    xml_change = dry.runs.get(step="replication.server_xml", node__name="app1").changes[0]
    assert '+    <Engine name="Catalina" defaultHost="localhost" jvmRoute="node01">' in xml_change["diff"]
    for host in ("app1", "app2"):
        assert sh(tb, host, f"test -e {BASE} && echo yes || echo no").strip() == "no"

    dep = deploy(cluster)
    assert dep.status == "succeeded", explain(dep)
    st = statuses(dep)
    assert st[("joget.datasource", "-")] == S.CHANGED
    for host in ("app1", "app2"):
        for step in STEPS[:4] + STEPS[5:8]:
            if step != "tomcat.install":  # an existing CATALINA_HOME: nothing to install
                assert st[(step, host)] == S.CHANGED, (step, host, explain(dep))
        assert st[("replication.members", host)] == S.OK

    # The app answers on every node, from the node itself by host name and from here.
    for host, route in (("app1", "node01"), ("app2", "node02")):
        body = sh(tb, host, f"curl -sS -m 10 http://{host}:8080/jw/web/json/workflow/currentUsername")
        assert json.loads(body) == {"username": "roleAnonymous"}
        body, headers = get(f"http://{tb.address(host)}:8080/jw/testbed/session")
        assert body.startswith(f"node={route} count=1 ")
        assert f".{route};" in headers["Set-Cookie"]  # the Engine's jvmRoute in the session id
        assert f'jvmRoute="{route}"' in sh(tb, host, f"cat {BASE}/conf/server.xml")
        assert "127.0.1.1" not in sh(tb, host, "cat /etc/hosts")
        assert sh(tb, host, f"getent hosts {host}").split()[0] == tb.address(host)
        assert f"-Dwflow.name={route}" in sh(tb, host, f"cat {BASE}/bin/setenv.sh")
        out = sh(tb, host, f"grep -E 'Replication member added|memberAdded' {BASE}/logs/catalina.out")
        other = tb.address("app2" if host == "app1" else "app1")
        assert other.replace(".", ", ") in out or other in out, out
        assert sh(tb, host, f"stat -c '%U' {BASE} {BASE}/conf/server.xml {BASE}/webapps/jw.war").split() == [
            "tomcat"] * 3
        war = base64.b64decode(sh(tb, host, f"base64 -w0 {BASE}/webapps/jw.war"))
        with zipfile.ZipFile(io.BytesIO(war)) as z:
            assert b"<distributable/>" in z.read("WEB-INF/web.xml")
    assert session_replicates(tb).startswith("node=node02 count=2 ")
    notes = dep.runs.get(step="replication.members", node__name="app1").changes
    assert notes == [{"description": f"app1: replication members {tb.address('app2')}:4000", "path": "", "diff": ""}]
    servers = json.loads(sh(tb, "app2", f"cat {WFLOW}/servers.json"))
    assert set(servers) >= {"node01", "node02"}  # Joget's format: a bare array of names
    assert sh(tb, "app1", f"cat {WFLOW}/app_datasource.properties") == "currentProfile=default\n"
    assert sh(tb, "app2", f"stat -c '%a %U' {WFLOW}/app_datasource-default.properties").strip() == "640 tomcat"
    assert "workflowUrl=jdbc\\:mysql\\://" in sh(tb, "app2", f"cat {WFLOW}/app_datasource-default.properties")

    again = deploy(cluster)
    assert again.status == "succeeded", explain(again)
    assert set(statuses(again).values()) == {S.OK}, explain(again)


@pytest.mark.full
@pytest.mark.django_db(transaction=True)
def test_a_dead_tomcat_is_restarted_and_nothing_else_changes(cluster, full_testbed):
    tb = full_testbed
    first = deploy(cluster)  # as planned (after the test above: all ok)
    assert first.status == "succeeded", explain(first)
    tb.host_exec("app1", "pkill -9 java")
    wait_for(lambda: tb.host_exec("app1", "pgrep -x java").returncode == 1, message="java gone on app1")
    dep = deploy(cluster)
    assert dep.status == "succeeded", explain(dep)
    st = statuses(dep)
    assert st.pop(("joget.running", "app1")) == S.CHANGED, explain(dep)
    assert set(st.values()) == {S.OK}, explain(dep)
    body = sh(tb, "app1", "curl -sS -m 10 http://app1:8080/jw/web/json/workflow/currentUsername")
    assert json.loads(body) == {"username": "roleAnonymous"}
    # The restarted node found its peer again (in the part of catalina.out since its new start).
    log = sh(tb, "app1", f"tac {BASE}/logs/catalina.out | sed '/Server version name/q'")
    assert "Replication member added" in log


@pytest.mark.full
@pytest.mark.django_db(transaction=True)
def test_static_membership_lists_the_other_node_and_replicates(cluster, full_testbed):
    tb = full_testbed
    Cluster.objects.filter(pk=cluster.pk).update(multicast=False)
    dep = deploy(cluster)
    assert dep.status == "succeeded", explain(dep)
    st = statuses(dep)
    for host in ("app1", "app2"):
        assert st[("replication.server_xml", host)] == S.CHANGED
        assert st[("joget.running", host)] == S.CHANGED
        xml = sh(tb, host, f"cat {BASE}/conf/server.xml")
        other = tb.address("app2" if host == "app1" else "app1")
        assert "StaticMembershipService" in xml
        assert f'<Member className="org.apache.catalina.tribes.membership.StaticMember" host="{other}" port="4000"' \
               in xml
        assert f'address="{tb.address(host)}" port="4000"' in xml
        log = sh(tb, host, f"tac {BASE}/logs/catalina.out | sed '/Server version name/q'")
        assert "Replication member added" in log
    assert session_replicates(tb).startswith("node=node02 count=2 ")
    again = deploy(cluster)
    assert set(statuses(again).values()) == {S.OK}, explain(again)


@pytest.mark.full
@pytest.mark.django_db(transaction=True)
def test_a_service_user_with_another_uid_on_one_app_server_is_named(cluster, full_testbed):
    tb = full_testbed
    assert deploy(cluster, ["joget.datasource"]).status == "succeeded"
    uid = sh(tb, "app2", "id -u tomcat").strip()
    gid = sh(tb, "app2", "id -g tomcat").strip()
    # As after a package install on one server only: the same name, another number (usermod refuses while
    # Tomcat runs, so the account line is edited).
    sh(tb, "app2", "sed -i -E 's/^(tomcat:[^:]*:)[0-9]+:/\\11999:/' /etc/passwd")
    try:
        dep = deploy(cluster, ["joget.datasource"])
        run = dep.runs.get(step="joget.datasource")
        assert run.status == S.FAILED
        assert run.message.startswith(f"tomcat on app2 cannot read the datasource files or write {WFLOW}"), run.message
        assert f"app2 1999:{gid}" in run.message and "usermod -u UID tomcat" in run.message
    finally:
        sh(tb, "app2", f"sed -i -E 's/^(tomcat:[^:]*:)1999:/\\1{uid}:/' /etc/passwd")
    assert deploy(cluster, ["joget.datasource"]).status == "succeeded"
