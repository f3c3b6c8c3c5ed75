"""In Chromium: states read as what they are. A checklist item the deployment will set up is no failure, the
wizard's step bar does not tick a failed checklist, and a checklist older than the last deployment says so."""

import re

import pytest
from django.utils import timezone

from deployments.models import CheckResult, CheckRun, Deployment
from nodes.models import Cluster, Node
from tests.browser_plugin import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]
R = CheckResult.Status


def _check_run(cluster, status, results):
    run = CheckRun.objects.create(cluster=cluster, status=status, finished=timezone.now())
    for pos, (item, node, result, fix) in enumerate(results):
        CheckResult.objects.create(check_run=run, item=item, position=pos, node=node, status=result,
                                   found="nothing answers", fix=fix, finished=timezone.now())
    return run


def test_checklist_states_read_as_they_are(live_server, admin_user, browser_page):
    from playwright.sync_api import expect

    cluster = Cluster.objects.create(name="prod")
    app1 = Node.objects.create(cluster=cluster, name="app1", address="10.0.0.11", is_app_server=True,
                               jvm_route="node01")
    _check_run(cluster, CheckRun.Status.PASSED, [
        ("shared_directory", app1, R.PASS, ""),
        ("database", app1, R.PLANNED, "Will be set up: the deployment installs and sets up the database on db.")])
    page = browser_page
    log_in(page, live_server.url, "/clusters/prod/wizard/checklist/")
    row = page.locator("tr.check-row[data-item=database]")
    expect(row).to_have_attribute("data-status", "planned")
    expect(row.locator(".status")).to_have_text("Will be set up")
    expect(row).to_contain_text("The deployment installs and sets up the database on db")
    expect(page.locator("#checklist-note")).to_have_text("1 item will be set up by the deployment.")
    page.goto(f"{live_server.url}/clusters/prod/wizard/review/")
    expect(page.locator(".stepper li[data-step=checklist]")).to_have_class(re.compile(r"\bdone\b"))

    # A failed checklist: the step bar shows it failed, it does not tick it.
    _check_run(cluster, CheckRun.Status.FAILED, [("shared_directory", app1, R.FAIL, "Make it writable.")])
    page.reload()
    checklist_step = page.locator(".stepper li[data-step=checklist]")
    expect(checklist_step).to_have_class(re.compile(r"\bfailed\b"))
    expect(checklist_step.locator(".n")).to_have_text("✗")

    # A deployment succeeded since: the old run is no plain "Failed" anywhere.
    dep = Deployment.objects.create(cluster=cluster, status=Deployment.Status.SUCCEEDED, finished=timezone.now())
    page.goto(f"{live_server.url}/clusters/prod/")
    card = page.locator("#cluster-checklist")
    expect(card.locator(".status")).to_have_text(f"Failed before deployment #{dep.pk}")
    expect(card).to_contain_text("run it again to check it as deployed")
    page.goto(f"{live_server.url}/clusters/prod/wizard/review/")
    expect(page.locator(".stepper li[data-step=checklist]")).to_have_class(re.compile(r"\bstale\b"))
    page.goto(f"{live_server.url}/clusters/prod/checklist/")
    expect(page.locator("#checklist .run-head .status")).to_have_text(f"Failed before deployment #{dep.pk}")
