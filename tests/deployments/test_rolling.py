"""Rolling operations on a serving cluster of 3 app servers, under steady load through the balancer.

A full testbed of its own (lb, app1..3, db) is deployed once per test (the first deployment of a fresh
database restarts every node: it is the set-up, not measured). Then each operation runs on the real worker
while `tests.load.SteadyLoad` keeps sessions busy on the stand-in's session endpoint through the balancer:
no request may fail and no session may be lost; stale reads are counted and reported.
"""

import io
import json
import re
import time
import zipfile
from pathlib import Path

import pytest
from django.core.management import call_command

from deployments import engine, services
from deployments.models import Deployment, LogLine, StepRun
from nodes.inventory import load_inventory
from nodes.testbed.standin import build_war
from tests.conftest import ROOT, wait_for
from tests.deployments.test_steps_joget import deploy, explain, sh
from tests.load import SteadyLoad
from tests.testbed_plugin import _session_testbed

S = StepRun.Status
Op = Deployment.Operation
pytestmark = [pytest.mark.full, pytest.mark.django_db(transaction=True)]
FIGURES = ROOT / "var" / "rolling-load.json"  # the load figures of the last run, for the report


@pytest.fixture(scope="module")
def roll_testbed():
    yield from _session_testbed("roll", full=True, app_servers=3)


@pytest.fixture
def cluster(roll_testbed, celery_worker_process):
    cluster = load_inventory(dict(roll_testbed), replace=True)
    dep = deploy(cluster, steps=None, timeout=900)
    assert dep.status == "succeeded", explain(dep)
    return cluster


def wait_done(dep, timeout=600) -> Deployment:
    def done():
        dep.refresh_from_db()
        return not dep.is_active
    wait_for(done, timeout=timeout, interval=0.5, message=f"{dep} to finish")
    return dep


def build_of_war(path: Path) -> str:
    with zipfile.ZipFile(path) as war:
        return re.search(r"^build=(\S+)", war.read("WEB-INF/standin.properties").decode(), re.M).group(1)


def node_builds(tb) -> dict[str, str]:
    """Which build each app server runs, asked on the node itself."""
    out = {}
    for host in tb.app_servers:
        body = sh(tb, host, "curl -s -m 10 http://127.0.0.1:8080/jw/testbed/session")
        out[host] = (re.search(r"build=(\S+)", body) or re.search(r"(.*)", body)).group(1)
    return out


def record(name: str, report) -> None:
    figures = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    figures[name] = {"requests": report.requests, "failed": report.failed, "lost": report.lost,
                     "stale": report.stale, "jumps": report.jumps, "seconds": round(report.seconds, 1),
                     "p50_ms": round(report.percentile(50), 1), "p95_ms": round(report.percentile(95), 1),
                     "nodes": dict(report.nodes), "builds": dict(report.builds), "errors": report.errors[:5]}
    FIGURES.write_text(json.dumps(figures, indent=2))
    print(f"{name}: {report.summary()}")


def under_load(tb, name: str, start, rate: float = 3.0) -> tuple[Deployment, object]:
    """Run the operation `start()` starts while sessions keep asking through the balancer; (deployment, report)."""
    with SteadyLoad(tb.address("lb"), sessions=6, rate=rate) as load:
        load.wait_requests(18)
        dep = wait_done(start())
        time.sleep(1.0)  # a few requests after the last node is back
    record(name, load.report)
    return dep, load.report


def rolled_in_waves(dep) -> None:
    """Each node's run started only after the one before it had finished."""
    runs = list(dep.runs.filter(step="roll.node").order_by("wave"))
    assert [r.wave for r in runs] == [1, 2, 3], [(r.node.name, r.wave) for r in runs]
    for before, after in zip(runs, runs[1:], strict=False):
        assert before.finished <= after.started, (before, after)


def test_rolling_upgrade_then_rollback_then_restart_lose_nothing(cluster, roll_testbed, tmp_path):
    tb = roll_testbed
    old_build = set(node_builds(tb).values())
    assert len(old_build) == 1, old_build
    v2 = build_war(tmp_path / "jw.war", "8.1.1", start_delay=2)
    new_build = build_of_war(v2)
    assert new_build not in old_build

    # As an admin types it: the cluster's setting (on by default) backs it up first, in the same run.
    printed = io.StringIO()

    def upgrade():
        call_command("operate", cluster.name, "upgrade", "--war", str(v2), stdout=printed)
        return Deployment.objects.filter(cluster=cluster).first()

    dep, load = under_load(tb, "upgrade, backed up first", upgrade)
    assert dep.status == "succeeded", explain(dep)
    rolled_in_waves(dep)
    assert dep.recap() == {"changed": 7, "ok": 0, "failed": 0, "skipped": 0}, "4 backup steps, 3 nodes"
    assert (load.failed, load.lost) == (0, 0), load.summary()
    backup_id = dep.options["backup_first"]
    assert printed.getvalue().strip().endswith(f"after a backup first: {backup_id}."), printed.getvalue()
    assert LogLine.objects.filter(run__deployment=dep, text__contains=f"backed up first: backup {backup_id}").exists()
    manifest = dep.runs.get(step="backup.manifest")
    assert all(manifest.finished <= r.started for r in dep.runs.filter(step="roll.node")), "a node rolled before"
    listed = io.StringIO()
    call_command("backups", cluster.name, "--format", "json", stdout=listed)
    mine = [b for b in json.loads(listed.getvalue()) if b["id"] == backup_id]
    assert [(b["state"], b["reason"]) for b in mine] == [("complete", "before_operation")], listed.getvalue()
    assert set(node_builds(tb).values()) == {new_build}
    assert {b for (_, b) in load.node_builds} == old_build | {new_build}, "the load saw both builds"
    for host in tb.app_servers:  # the WAR it replaced, kept outside webapps with its sha256
        kept = sh(tb, host, "cd /var/lib/jcc-console/wars && sha256sum -c jw.war.previous.sha256 && stat -c %U:%a .")
        assert "jw.war.previous: OK" in kept and "root:700" in kept, kept

    dep, load = under_load(tb, "rollback", lambda: services.start_operation(None, cluster, Op.ROLLBACK))
    assert dep.status == "succeeded", explain(dep)
    assert (load.failed, load.lost) == (0, 0), load.summary()
    assert set(node_builds(tb).values()) == old_build

    # Faster sessions (10 requests a second each) for the stale reads asynchronous replication may show.
    dep, load = under_load(tb, "restart, fast sessions (asynchronous replication)",
                           lambda: services.start_operation(None, cluster, Op.RESTART), rate=10.0)
    assert dep.status == "succeeded", explain(dep)
    rolled_in_waves(dep)
    assert (load.failed, load.lost) == (0, 0), load.summary()
    assert set(node_builds(tb).values()) == old_build

    # A deployment now changes nothing (the artifact is the WAR the nodes run) and restarts nothing.
    again = deploy(cluster, steps=None, timeout=600)
    assert again.status == "succeeded" and again.recap()["changed"] == 0, explain(again)


def test_a_tomcat_that_will_not_start_stops_the_roll_and_resume_finishes_it(cluster, roll_testbed):
    tb = roll_testbed
    setenv = "/opt/joget/tomcat-base/bin/setenv.sh"
    # app2's Tomcat will not start (catalina.sh sources setenv.sh, which now fails).
    tb.host_exec("app2", f"cp {setenv} /root/setenv.good && echo 'echo injected failure >&2; exit 1' >> {setenv}",
                 check=True)
    with SteadyLoad(tb.address("lb"), sessions=6, rate=3.0) as load:
        load.wait_requests(18)
        dep = wait_done(services.start_operation(None, cluster, Op.RESTART))
        st = {r.node.name: r.status for r in dep.runs.select_related("node")}
        assert dep.status == "failed" and st == {"app1": S.CHANGED, "app2": S.FAILED, "app3": S.SKIPPED}, explain(dep)
        members = manager_states(cluster)
        assert members["node02"] == "disabled" and members["node01"] == members["node03"] == "enabled", members
        time.sleep(3)  # nodes 1 and 3 serve meanwhile
        tb.host_exec("app2", f"cp /root/setenv.good {setenv} && chown tomcat:tomcat {setenv}", check=True)
        engine.resume(dep)
        dep = wait_done(dep)
        time.sleep(1.0)
    record("restart with a failure on app2, then resume", load.report)
    assert dep.status == "succeeded", explain(dep)
    st = {r.node.name: r.status for r in dep.runs.select_related("node")}
    assert st == {"app1": S.OK, "app2": S.CHANGED, "app3": S.CHANGED}, explain(dep)
    assert (load.report.failed, load.report.lost) == (0, 0), load.report.summary()
    assert set(manager_states(cluster).values()) == {"enabled"}


def manager_states(cluster) -> dict[str, str]:
    from deployments.steps.members import Manager

    return {route: m.state for route, m in Manager(cluster).members().items()}


def test_a_redeploy_that_changes_server_xml_rolls_and_synchronous_replication(cluster, roll_testbed):
    tb = roll_testbed
    # (The restart of the first test is the same under Tomcat's asynchronous default: compare the figures.)
    # Synchronous replication is a server.xml change: the deployment of a serving cluster rolls it in.
    cluster.synchronous_replication = True
    cluster.save()
    dep, load = under_load(tb, "redeploy of a changed server.xml (synchronous replication on)",
                           lambda: engine.start(cluster))
    assert dep.status == "succeeded", explain(dep)
    running = list(dep.runs.filter(step="joget.running").order_by("wave").select_related("node"))
    assert [(r.node.name, r.wave, r.status) for r in running] == [
        ("app1", 1, S.CHANGED), ("app2", 2, S.CHANGED), ("app3", 3, S.CHANGED)], explain(dep)
    for before, after in zip(running, running[1:], strict=False):
        assert before.finished <= after.started
    assert (load.failed, load.lost) == (0, 0), load.summary()
    for host in tb.app_servers:
        server_xml = sh(tb, host, "cat /opt/joget/tomcat-base/conf/server.xml")
        assert 'channelSendOptions="use_ack,synchronized_ack"' in server_xml

    dep, sync_load = under_load(tb, "restart, fast sessions (synchronous replication)",
                                lambda: services.start_operation(None, cluster, Op.RESTART), rate=10.0)
    assert dep.status == "succeeded", explain(dep)
    assert (sync_load.failed, sync_load.lost) == (0, 0), sync_load.summary()
    assert sync_load.stale == 0, sync_load.summary()


def hand_restart(tb, cluster, host: str) -> None:
    """Restart a node's Tomcat as an admin would by hand (catalina.sh stop, start), and wait until it answers."""
    from deployments.steps import tomcat_tools
    from nodes.ssh import quote

    node = cluster.nodes.get(name=host)
    catalina = quote(f"{tomcat_tools.home(node)}/bin/catalina.sh")
    tb.host_exec(host, f"{tomcat_tools.as_service_user(node, catalina + ' stop 30 -force')} >/dev/null 2>&1; "
                       f"( {tomcat_tools.as_service_user(node, 'setsid ' + catalina + ' start')} ) "
                       "</dev/null >/dev/null 2>&1", check=True)
    wait_for(lambda: "build=" in sh(tb, host, "curl -s -m 5 http://127.0.0.1:8080/jw/testbed/session || true"),
             timeout=120, interval=1.0, message=f"{host} to answer after its hand restart")


def test_drift_repair_of_hand_edits_rolls_the_restart_it_needs(cluster, roll_testbed):
    from tests.deployments.test_backups_full import drift_command

    tb = roll_testbed
    # app1: server.xml edited, not restarted; app2: setenv.sh edited and Tomcat restarted by hand to apply it.
    tb.host_exec("app1", "sed -i 's/jvmRoute=\"node01\"/jvmRoute=\"handmade\"/' "
                         "/opt/joget/tomcat-base/conf/server.xml", check=True)
    tb.host_exec("app2", "echo 'CATALINA_OPTS=\"$CATALINA_OPTS -Djcc.hand.edit=1\"' >> "
                         "/opt/joget/tomcat-base/bin/setenv.sh", check=True)
    hand_restart(tb, cluster, "app2")
    assert "jcc.hand.edit" in sh(tb, "app2", "ps -eo args | grep [j]cc.hand.edit || true")
    code, out = drift_command(cluster)
    assert code == 1, out
    assert "replication.server_xml on app1" in out and "joget.setenv on app2" in out, out
    assert "joget.running on app2: restart Tomcat: it was restarted outside the console" in out, out

    # Two sessions on each app server (Apache's own choice may leave one without any), app2's among them.
    routes = [n.jvm_route for n in cluster.app_servers()]
    with SteadyLoad(tb.address("lb"), sessions=6, rate=3.0, routes=routes) as load:
        load.wait_requests(18)
        assert set(load.report.nodes) == set(routes), load.report.summary()
        code, out = drift_command(cluster, "--repair")
        time.sleep(1.0)
    record("drift repair (server.xml, setenv.sh and a hand restart)", load.report)
    assert code == 0 and "Repaired" in out, out
    repair = Deployment.objects.filter(cluster=cluster, dry_run=False).first()
    assert "joget.running" in repair.steps, repair.steps
    running = [(r.node.name, r.wave, r.status) for r in
               repair.runs.filter(step="joget.running").order_by("wave").select_related("node")]
    assert running == [("app1", 1, S.OK), ("app2", 2, S.CHANGED), ("app3", 3, S.OK)], explain(repair)
    rolled = "\n".join(LogLine.objects.filter(run__deployment=repair, run__step="joget.running",
                                               run__node__name="app2").values_list("text", flat=True))
    assert "take app2 out of the balancer" in rolled and "put app2 back in the balancer" in rolled, rolled
    assert (load.report.failed, load.report.lost) == (0, 0), load.report.summary()
    assert "jcc.hand.edit" not in sh(tb, "app2", "ps -eo args | grep [j]cc.hand.edit || true")
    assert 'jvmRoute="node01"' in sh(tb, "app1", "cat /opt/joget/tomcat-base/conf/server.xml")


def test_disable_drain_and_enable_a_member_from_the_command_line_survive_a_reload(cluster, roll_testbed, capsys):

    tb = roll_testbed
    site = "/etc/apache2/sites-available/jwsite.conf"
    call_command("operate", cluster.name, "disable", "app3", "--follow")
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == "changed=1 ok=0 failed=0 skipped=0", out
    assert manager_states(cluster)["node03"] == "disabled"
    assert "route=node03 retry=10 status=+D" in sh(tb, "lb", f"cat {site}")
    tb.host_exec("lb", "apache2ctl graceful", check=True)  # a reload keeps it: it is in the site file
    wait_for(lambda: manager_states(cluster).get("node03") == "disabled", timeout=20, message="node03 disabled")
    with SteadyLoad(tb.address("lb"), sessions=4, rate=4.0) as load:
        load.wait_requests(40)
    assert load.report.failed == 0 and "node03" not in load.report.nodes, load.report.summary()

    call_command("operate", cluster.name, "drain", "app3")
    dep = wait_done(Deployment.objects.filter(cluster=cluster).first())
    assert dep.status == "succeeded", explain(dep)
    assert manager_states(cluster)["node03"] == "drain"
    assert "route=node03 retry=10 status=+N" in sh(tb, "lb", f"cat {site}")

    call_command("operate", cluster.name, "enable", "app3", "--follow")
    assert capsys.readouterr().out.strip().splitlines()[-1] == "changed=1 ok=0 failed=0 skipped=0"
    assert set(manager_states(cluster).values()) == {"enabled"}
    assert "status=+" not in sh(tb, "lb", f"cat {site}")
    # A redeploy keeps the states as they are kept: nothing to change.
    again = deploy(cluster, steps=None, timeout=600)
    assert again.status == "succeeded" and again.recap()["changed"] == 0, explain(again)


@pytest.mark.browser
def test_a_roll_in_progress_in_the_browser(cluster, roll_testbed, live_server, admin_user, browser_page, screenshot):
    from playwright.sync_api import expect

    from tests.browser_plugin import log_in

    page, url = browser_page, live_server.url
    log_in(page, url, f"/clusters/{cluster.name}/")
    expect(page.locator("#members-table tr[data-member]")).to_have_count(3)
    expect(page.locator("#operate-restart summary")).to_be_visible()
    dep = services.start_operation(None, cluster, Op.RESTART)
    # The second node out of the balancer, restarting; the first one back.
    wait_for(lambda: dep.runs.filter(node__name="app2", status=S.RUNNING).exists()
             and manager_states(cluster).get("node02") == "disabled", timeout=180, message="app2 rolling")
    page.goto(f"{url}/clusters/{cluster.name}/")
    expect(page.locator('#members-table tr[data-member="node02"]')).to_contain_text("Dis")
    screenshot(page, "rolling-members")
    page.goto(f"{url}/deployments/{dep.pk}/")
    expect(page.locator("h1")).to_contain_text(f"Rolling restart #{dep.pk}")
    expect(page.locator("#deployment-status")).to_contain_text("wave 2")
    page.locator('tr.run-row:has-text("app2") button:has-text("Log")').click()
    expect(page.locator("#deployment-status")).to_contain_text("take app2 out of the balancer")
    screenshot(page, "rolling-restart")
    dep = wait_done(dep)
    assert dep.status == "succeeded", explain(dep)
    page.reload()
    expect(page.locator("#deployment-status .recap")).to_have_text("changed=3 ok=0 failed=0 skipped=0")
