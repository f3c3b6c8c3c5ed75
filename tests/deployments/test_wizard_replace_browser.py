"""In Chromium: loading a testbed that is already a cluster asks first, says what is lost, keeps it unless told."""

import pytest

from deployments import wizard
from deployments.models import CheckRun, Deployment
from licensing.models import License
from nodes.audit import Action
from nodes.models import AuditEvent, Cluster, Node
from tests.browser_plugin import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

INVENTORY = {"cluster": "testbed", "nodes": [
    {"name": "app1", "address": "10.0.0.11", "roles": ["app_server"], "jvm_route": "node01"}]}


@pytest.fixture
def loaded_testbed(monkeypatch, admin_user):
    """A running testbed (as the wizard sees it) whose cluster the console already holds, with history."""
    monkeypatch.setattr(wizard, "_running_testbeds", lambda: [{"prefix": "tb", "cluster": "testbed", "nodes": 1}])
    monkeypatch.setattr(wizard, "_testbed_inventory", lambda prefix: INVENTORY)
    cluster = Cluster.objects.create(name="testbed", joget_admin_password="secret")
    node = Node.objects.create(cluster=cluster, name="app1", address="10.0.0.11", is_app_server=True,
                               jvm_route="node01")
    License.objects.create(node=node, system_key="EE-KEY", state=License.State.KEY_READ)
    Deployment.objects.create(cluster=cluster, status=Deployment.Status.SUCCEEDED, started_by=admin_user)
    CheckRun.objects.create(cluster=cluster, status=CheckRun.Status.PASSED)
    return cluster


def test_reimporting_a_loaded_testbed_asks_and_keeps_history_unless_confirmed(live_server, loaded_testbed,
                                                                              browser_page):
    from playwright.sync_api import expect

    page = browser_page
    log_in(page, live_server.url, "/wizard/")
    row = page.locator("#testbed-tb")
    expect(row).to_contain_text("loaded")
    row.get_by_role("button", name="Import").click()
    confirm = page.locator("#replace-confirm")
    for lost in ("1 deployment", "1 checklist result", "1 system key", "the stored Joget admin login"):
        expect(confirm).to_contain_text(lost)
    # Keeping it changes nothing.
    page.click("#keep-cluster")
    page.wait_for_url("**/clusters/testbed/wizard/**")
    cluster = Cluster.objects.get(name="testbed")
    assert cluster.pk == loaded_testbed.pk and cluster.deployments.count() == 1
    assert not AuditEvent.objects.filter(action=Action.INVENTORY_IMPORTED).exists()

    page.goto(f"{live_server.url}/wizard/")
    page.locator("#testbed-tb").get_by_role("button", name="Import").click()
    page.click("#confirm-replace")
    page.wait_for_url("**/clusters/testbed/wizard/nodes/")
    expect(page.locator(".flash-success")).to_contain_text("replaced cluster testbed")
    cluster = Cluster.objects.get(name="testbed")
    assert cluster.pk != loaded_testbed.pk and not cluster.deployments.exists()
    event = AuditEvent.objects.get(action=Action.INVENTORY_IMPORTED)
    assert "replaced the existing cluster" in event.details
    assert "1 deployment" in event.details and "the stored Joget admin login" in event.details
    page.goto(f"{live_server.url}/audit/")
    expect(page.locator("body")).to_contain_text("replaced the existing cluster")
