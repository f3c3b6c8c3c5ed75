"""In Chromium: the wizard's last steps keep the admin in the wizard. Resume on the Run step, the test run again
or finished on the Test step, the Joget login asked for on the Licenses step; and the site has its icon."""

import re

import pytest
from django.utils import timezone

from deployments import engine
from deployments.models import Deployment, StepRun
from nodes.models import Cluster, Node
from tests.browser_plugin import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]
S = StepRun.Status


@pytest.fixture
def cluster():
    c = Cluster.objects.create(name="prod")
    Node.objects.create(cluster=c, name="app1", address="10.0.0.11", is_app_server=True, jvm_route="node01")
    return c


def _deployment(cluster, status, step, run_status, **run):
    dep = Deployment.objects.create(cluster=cluster, status=status, finished=timezone.now(), steps=[step])
    StepRun.objects.create(deployment=dep, step=step, position=0, status=run_status, finished=timezone.now(), **run)
    return dep


def test_resume_on_the_run_step_stays_in_the_wizard(live_server, admin_user, cluster, browser_page, monkeypatch):
    from playwright.sync_api import expect

    dep = _deployment(cluster, Deployment.Status.FAILED, "test.marker", S.FAILED, node=cluster.nodes.get(),
                      message="failed")
    resumed = []
    monkeypatch.setattr(engine, "resume", resumed.append)  # no worker here: what matters is where the page goes
    page = browser_page
    log_in(page, live_server.url, "/clusters/prod/wizard/run/")
    page.get_by_role("button", name="Resume").click()
    page.wait_for_url("**/clusters/prod/wizard/run/")
    expect(page.locator(".flash-success")).to_contain_text("Resumed")
    assert [d.pk for d in resumed] == [dep.pk]


def test_the_test_step_runs_the_test_again_and_finishes(live_server, admin_user, cluster, browser_page,
                                                        monkeypatch):
    from playwright.sync_api import expect

    _deployment(cluster, Deployment.Status.SUCCEEDED, "post_test", S.OK,
                message="Passed: /jw answers. Nothing needed changing.",
                changes=[{"description": "✓ /jw answers: HTTP 200 from node01", "path": "", "diff": ""}])
    started = []

    def start(cluster, *, user=None, dry_run=False, steps=None):
        started.append(steps)
        return Deployment.objects.create(cluster=cluster, status=Deployment.Status.SUCCEEDED, steps=steps)

    monkeypatch.setattr(engine, "start", start)
    page = browser_page
    log_in(page, live_server.url, "/clusters/prod/wizard/test/")
    expect(page.locator("#post-test-checks")).to_contain_text("✓ /jw answers")
    page.click("#rerun-test")
    page.wait_for_url("**/clusters/prod/wizard/test/")
    assert started == [["post_test"]]
    page.click("#wizard-finish")
    page.wait_for_url("**/clusters/prod/")
    expect(page.locator("h1")).to_contain_text("prod")


def test_licenses_step_after_a_deployment_asks_for_the_joget_login(live_server, admin_user, cluster, browser_page):
    from playwright.sync_api import expect

    _deployment(cluster, Deployment.Status.SUCCEEDED, "joget.war", S.CHANGED, node=cluster.nodes.get())
    page = browser_page
    log_in(page, live_server.url, "/clusters/prod/wizard/licenses/")
    notice = page.locator("#joget-login-needed")
    expect(notice).to_contain_text("no Joget admin password is stored")
    notice.get_by_role("link", name="Set it on the cluster").click()
    page.wait_for_url(re.compile(r"/clusters/prod/edit/\?next="))
    page.fill("#id_joget_admin_password", "console-pass")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/clusters/prod/wizard/licenses/")
    expect(page.locator("#joget-login-needed")).to_have_count(0)
    expect(page.locator("#wizard-licenses")).to_be_visible()


def test_the_site_has_an_icon(live_server, browser_page):
    response = browser_page.goto(f"{live_server.url}/favicon.ico")
    assert response.status == 200 and response.headers["content-type"].startswith("image/svg+xml")
