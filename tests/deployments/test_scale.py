"""Scale out and in on a serving cluster, under steady load through the balancer.

One full testbed (lb, app1, app2, db, and spare1 made like an app server but out of the cluster) is deployed once.
Then, while `tests.load.SteadyLoad` keeps sessions busy through the balancer: with multicast membership spare1
joins as app3 (2 → 3) and app1 leaves (3 → 2: app1 replaced by app3); with static membership app1's host comes
back as app1b taking over app1's jvmRoute (2 → 3; the others' member lists rolled) and leaves again (3 → 2).
No request may fail and no session may be lost; new sessions reach the added node; the system keys list 3 keys
while it is in; a second add and an unknown remove change nothing.
"""

import io
import json
import re
import time

import pytest
from django.core.management import CommandError, call_command

from deployments import engine, services
from deployments.models import Deployment, StepRun
from licensing.models import License
from nodes import ssh, web
from nodes.inventory import load_inventory
from nodes.models import AuditEvent, Node
from tests.conftest import ROOT
from tests.deployments.test_rolling import record, wait_done
from tests.deployments.test_steps_joget import deploy, explain
from tests.e2e.test_layout_browser import _too_wide
from tests.load import SESSION_PATH, SteadyLoad
from tests.testbed_plugin import _session_testbed

Op = Deployment.Operation
pytestmark = [pytest.mark.full, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def scale_testbed():
    yield from _session_testbed("scale", full=True, app_servers=2, spares=1)


def under_load(tb, name, start, routes=("node01", "node02", "node03")):
    """Sessions on every node that serves (a removed node's too: they must go on elsewhere) during `start()`'s run."""
    with SteadyLoad(tb.address("lb"), sessions=6, rate=3.0, routes=routes) as load:
        load.wait_requests(18)
        dep = wait_done(start(), timeout=900)
        time.sleep(1.0)
    record(name, load.report)
    assert dep.status == "succeeded", explain(dep)
    assert (load.report.failed, load.report.lost) == (0, 0), load.report.summary()
    return dep, load.report


def new_session_routes(tb, tries=24) -> set[str]:
    """The nodes that answer new sessions (no cookie) through the balancer."""
    routes = set()
    for _ in range(tries):
        reply = web.get(tb.address("lb"), 80, SESSION_PATH, timeout=10)
        assert reply.status == 200, reply
        routes.add(reply.text.split()[0].removeprefix("node="))
    return routes


def system_keys(cluster) -> list[dict]:
    out = io.StringIO()
    call_command("system_keys", cluster.name, "--format", "json", stdout=out)
    return json.loads(out.getvalue())


def add(cluster, name, host, route):
    return lambda: services.start_scale(None, cluster, Op.SCALE_OUT, name=name, address=host["address"],
                                        host_key=host["host_key"], jvm_route=route)


def remove(cluster, name):
    return lambda: services.start_scale(None, cluster, Op.SCALE_IN, node=name)


def wait_keys(cluster, count):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        keys = system_keys(cluster)
        if len(keys) == count and all(k["system_key"] for k in keys):
            return keys
        time.sleep(1)
    return system_keys(cluster)


def add_in_browser(page, url, cluster, name, host, route, screenshot) -> Deployment:
    """The cluster page's Add an app server: details, the offered host key confirmed, the checks and the plan
    reviewed, then the run's page."""
    from playwright.sync_api import expect

    page.goto(f"{url}/clusters/{cluster.name}/")
    page.click("#add-app-server")
    page.fill("#id_name", name)
    page.fill("#id_address", host["address"])
    page.fill("#id_jvm_route", route)
    page.click("button:has-text('Next: fetch its host key')")
    expect(page.locator("#offered-fingerprint")).to_have_text(ssh.fingerprint(host["host_key"]))
    page.click("button:has-text('Confirm this key')")
    expect(page.locator("#scale-plan")).to_contain_text("its static member list gains " + name)
    failed = page.locator('#scale-checks tr[data-status="fail"]')
    assert failed.count() == 0, failed.all_inner_texts()
    screenshot(page, "scale-add-review")
    page.set_viewport_size({"width": 390, "height": 844})  # and on a phone: nothing sticks out sideways
    assert _too_wide(page) == ""
    page.set_viewport_size({"width": 1280, "height": 900})
    page.click(f"button:has-text('Add {name} to {cluster.name}')")
    page.wait_for_url("**/deployments/*/")
    expect(page.locator("h1")).to_contain_text("App server addition")
    return Deployment.objects.filter(cluster=cluster, operation=Op.SCALE_OUT).latest("created")


@pytest.mark.browser
def test_two_three_two_app_servers_with_multicast_then_static_membership(
        scale_testbed, celery_worker_process, live_server, admin_user, browser_page, screenshot):
    from playwright.sync_api import expect

    from tests.browser_plugin import log_in

    tb, page, url = scale_testbed, browser_page, live_server.url
    cluster = load_inventory(dict(tb), replace=True)
    dep = deploy(cluster, steps=None, timeout=900)
    assert dep.status == "succeeded", explain(dep)
    spare = tb["spare_nodes"][0]
    log_in(page, url, f"/clusters/{cluster.name}/")
    app1 = {"address": tb.address("app1"), "host_key": tb.node("app1")["host_key"]}

    # Without its host key the command pins nothing: it shows the key the node offers, to be checked.
    with pytest.raises(CommandError, match=re.escape(f"offers {spare['host_key']} (")):
        call_command("operate", cluster.name, "add-node", "--name", "app3", "--address", spare["address"],
                     "--jvm-route", "node03")
    # Multicast: spare1 joins as app3 from the command line, followed to its recap; nothing else restarts.
    out = io.StringIO()

    def add_by_command():
        call_command("operate", cluster.name, "add-node", "--name", "app3", "--address", spare["address"],
                     "--host-key", spare["host_key"], "--jvm-route", "node03", "--follow", stdout=out)
        return Deployment.objects.filter(cluster=cluster, operation=Op.SCALE_OUT).latest("created")

    dep, _ = under_load(tb, "scale out 2 → 3 (multicast, operate add-node --follow)", add_by_command,
                        routes=("node01", "node02"))
    (ROOT / "var" / "scale-add-follow.txt").write_text(out.getvalue())
    recap = " ".join(f"{k}={v}" for k, v in dep.recap().items())
    assert out.getvalue().rstrip().endswith(recap) and "failed=0 skipped=0" in recap, out.getvalue()[-500:]
    assert not dep.runs.filter(step="scale.members", status=StepRun.Status.CHANGED).exists()
    assert "node03" in new_session_routes(tb)
    keys = wait_keys(cluster, 3)
    assert [k["node"] for k in keys] == ["app1", "app2", "app3"] and all(k["system_key"] for k in keys), keys
    needed = AuditEvent.objects.filter(action=AuditEvent.Action.LICENSE_NEEDED)
    assert needed.filter(details__startswith="app3 needs a license (system key ").exists()
    assert License.objects.get(node__name="app3", node__cluster=cluster).system_key

    # A second add of the same node, and a remove of an unknown node: refused, nothing changed.
    before = (Node.all_objects.count(), Deployment.objects.count())
    with pytest.raises(engine.InvalidOption, match="app3 is an app server of .* already"):
        add(cluster, "app3", spare, "node09")()
    with pytest.raises(CommandError, match="No node 'ghost'"):
        call_command("operate", cluster.name, "remove-node", "ghost")
    assert (Node.all_objects.count(), Deployment.objects.count()) == before

    # app1 leaves (app3 replaces it): out of the balancer first, no request lost; kept in the history.
    dep, load = under_load(tb, "scale in 3 → 2 (multicast, app1 replaced by app3)", remove(cluster, "app1"))
    assert load.nodes["node01"] > 0, "sessions were on app1 as it left"
    assert [n.name for n in cluster.app_servers()] == ["app2", "app3"]
    assert new_session_routes(tb) <= {"node02", "node03"}  # never the node that left
    assert dep.runs.get(step="scale.leave").node.name == "app1"
    assert License.objects.get(node__name="app1", node__cluster=cluster).released_at is not None
    assert [k["node"] for k in system_keys(cluster)] == ["app2", "app3"]

    # Static membership: a node of one kind finds no member of the other, so the switch is no roll: the app servers
    # stop (a maintenance window, not measured), the deployment starts them with static member lists. Then app1's
    # host comes back as app1b on route node01, from the cluster page.
    cluster.multicast = False
    cluster.save()
    # While they serve, the deployment refuses the switch on each running node before anything changes.
    pids = {host: tb.host_exec(host, "pgrep -x java").stdout for host in ("app2", "spare1")}
    refused = deploy(cluster, steps=None, timeout=900)
    assert refused.status == "failed", explain(refused)
    failed = refused.runs.filter(status=StepRun.Status.FAILED)
    assert {(r.step, r.node.name) for r in failed} == {("replication.server_xml", "app2"),
                                                       ("replication.server_xml", "app3")}, explain(refused)
    assert all("cannot switch by a roll" in r.message and "Nothing was changed" in r.message for r in failed)
    assert not refused.runs.filter(status=StepRun.Status.CHANGED).exists(), explain(refused)
    assert pids == {host: tb.host_exec(host, "pgrep -x java").stdout for host in ("app2", "spare1")}
    for host in ("app2", "spare1"):  # app3 is the spare host
        tb.host_exec(host, "pkill -TERM java; for i in $(seq 100); do pgrep java >/dev/null || exit 0; sleep 0.2; "
                           "done; pkill -KILL java", check=False)
    dep = deploy(cluster, steps=None, timeout=900)
    assert dep.status == "succeeded", explain(dep)
    dep, _ = under_load(tb, "scale out 2 → 3 (static, from the cluster page)",
                        lambda: add_in_browser(page, url, cluster, "app1b", app1, "node01", screenshot),
                        routes=("node02", "node03"))
    rolled = dep.runs.filter(step="scale.members").order_by("wave")
    assert [(r.node.name, r.status) for r in rolled] == [("app2", "changed"), ("app3", "changed")], explain(dep)
    assert "node01" in new_session_routes(tb)
    keys = wait_keys(cluster, 3)
    assert len(keys) == 3 and all(k["system_key"] for k in keys), keys
    page.goto(f"{url}/clusters/{cluster.name}/licenses/")
    expect(page.locator("#license-app1b")).to_contain_text(License.objects.get(node__name="app1b").system_key)
    expect(page.locator("#needs-license-app1b")).to_contain_text("takes over route node01 from app1")
    screenshot(page, "scale-license")
    warned = needed.filter(details__startswith="app1b needs a license").first()
    assert warned and "takes over route node01 from app1" in warned.details, warned

    dep, load = under_load(tb, "scale in 3 → 2 (static)", remove(cluster, "app1b"))
    assert load.nodes["node01"] > 0, "sessions were on app1b as it left"
    assert [(r.node.name, r.status) for r in dep.runs.filter(step="scale.members").order_by("wave")] == [
        ("app2", "changed"), ("app3", "changed")], explain(dep)
    assert new_session_routes(tb) <= {"node02", "node03"}  # never the node that left
    # A deployment now changes nothing: the inventory and the nodes agree.
    again = deploy(cluster, steps=None, timeout=600)
    assert again.status == "succeeded" and again.recap()["changed"] == 0, explain(again)
