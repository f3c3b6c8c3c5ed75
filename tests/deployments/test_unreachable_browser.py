"""In Chromium: a node SSH cannot reach is named as the one cause, on the deployment page (its hint, and the
steps skipped because of it) and on the status page (one chip, not one per check)."""

import pytest
from django.utils import timezone

from deployments.models import Deployment, StepRun
from deployments.steps import get_step
from nodes.models import CheckState, Cluster, HealthState, Node
from tests.browser_plugin import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]
S = StepRun.Status
DOWN = "Cannot reach 10.0.0.12:22: Connection refused."


@pytest.fixture
def outage():
    """app2 is down: its first step failed on SSH, later steps were skipped on both app servers."""
    cluster = Cluster.objects.create(name="prod")
    app1, app2 = (Node.objects.create(cluster=cluster, name=f"app{i}", address=f"10.0.0.1{i}", is_app_server=True,
                                      jvm_route=f"node0{i}") for i in (1, 2))
    dep = Deployment.objects.create(cluster=cluster, status=Deployment.Status.FAILED, finished=timezone.now())

    def run(step, pos, node, status, message, hint=""):
        StepRun.objects.create(deployment=dep, step=step, position=pos, node=node, status=status, message=message,
                               hint=hint, finished=timezone.now())

    run("tomcat.install", 0, app1, S.OK, "Already as planned: no change.")
    run("tomcat.install", 0, app2, S.FAILED, DOWN, get_step("tomcat.install").hint)
    # What the engine stores: each skipped run names the first blocking run, skipped ones too.
    for node in (app1, app2):
        run("tomcat.base", 1, node, S.SKIPPED, "Skipped: tomcat.install on app2 did not succeed (failed).")
        run("joget.setenv", 2, node, S.SKIPPED, "Skipped: tomcat.base on app1 did not succeed (skipped).")
    now = timezone.now()
    CheckState.objects.create(cluster=cluster, node=app2, key="ssh", state=HealthState.BAD, since=now, detail=DOWN)
    for key in ("load", "memory", "disk", "wflow", "tomcat", "replication", "servers_json"):
        CheckState.objects.create(cluster=cluster, node=app2, key=key, state=HealthState.UNKNOWN, since=now,
                                  detail="not checked: no SSH session")
    CheckState.objects.create(cluster=cluster, node=app2, key="http", state=HealthState.BAD, since=now,
                              detail="connection refused")
    CheckState.objects.create(cluster=cluster, node=app1, key="ssh", state=HealthState.OK, since=now, detail="ok")
    return dep


def test_an_unreachable_node_is_named_once_as_the_cause(live_server, admin_user, outage, browser_page):
    from playwright.sync_api import expect

    page = browser_page
    log_in(page, live_server.url, f"/deployments/{outage.pk}/")
    step = page.locator(".card.step").filter(has=page.locator(".mono", has_text="tomcat.install"))
    failed = step.locator("tr.run-row").filter(has=page.locator("td.node", has_text="app2"))
    expect(failed.locator(".hint")).to_have_text(
        "Hint: app2 cannot be reached over SSH: check its address and port (10.0.0.12:22), that the server is up "
        "and sshd runs on it, and that no firewall drops the connection; then retry.")
    setenv = page.locator(".card.step").filter(has=page.locator(".mono", has_text="joget.setenv"))
    for row in (setenv.locator("tr.run-row").nth(0), setenv.locator("tr.run-row").nth(1)):
        expect(row.locator("td.msg")).to_have_text("Skipped: tomcat.install failed on app2.")

    page.goto(f"{live_server.url}/clusters/prod/status/")
    chips = page.locator("#cluster-status tr[data-node=app2] td:nth-child(4) .status")
    expect(chips).to_have_count(1)
    expect(chips).to_have_text("SSH unreachable, 8 checks with it")
