"""In Chromium at 1280 px and at phone width (390 px): no page scrolls sideways, and on a phone a menu button
opens the navigation the sidebar holds on a wide screen."""

import pytest
from django.utils import timezone

from deployments.models import CheckResult, CheckRun, Deployment, StepRun
from licensing.models import License
from nodes.models import (
    Artifact,
    AuditEvent,
    CheckState,
    Cluster,
    Credential,
    LayerMode,
    LoadBalancer,
    Node,
    SharedDatabase,
    SharedDirectory,
)
from tests.browser_plugin import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]

LONG = "x" * 40
PAGES = [
    "/", "/clusters/prod/", "/clusters/prod/edit/", "/clusters/prod/layers/shared-database/",
    "/clusters/prod/nodes/app1/", "/clusters/prod/nodes/app1/edit/", "/clusters/prod/nodes/new/",
    "/clusters/prod/status/", "/clusters/prod/nodes/app1/status/", "/clusters/prod/licenses/",
    "/clusters/prod/checklist/", "/clusters/prod/deployments/", "/deployments/{dep}/",
    "/clusters/import/", "/credentials/", "/credentials/new/", "/audit/", "/wizard/",
    *(f"/clusters/prod/wizard/{step}/" for step in
      ("nodes", "layers", "artifacts", "checklist", "review", "run", "licenses", "test")),
]


@pytest.fixture
def cluster(admin_user):
    """A cluster with something on every page: long keys, errors, a failed deployment with hints."""
    c = Cluster.objects.create(name="prod", joget_admin_password="x")
    nodes = {}
    for i, (name, roles) in enumerate([("lb", {"is_load_balancer": True}), ("app1", {"is_app_server": True}),
                                       ("app2", {"is_app_server": True}), ("db", {"is_database": True})]):
        nodes[name] = Node.objects.create(cluster=c, name=name, address=f"10.20.30.{40 + i}",
                                          jvm_route=f"node0{i}" if "is_app_server" in roles else "", **roles)
    SharedDirectory.objects.create(cluster=c, mode=LayerMode.EXISTING)
    SharedDatabase.objects.create(cluster=c, node=nodes["db"], password="pw")
    LoadBalancer.objects.create(cluster=c, node=nodes["lb"], http_port=80)
    for name in ("app1", "app2"):
        License.objects.create(
            node=nodes[name], system_key="EE-" + "0123456789ABCDEF" * 2, state=License.State.REFUSED,
            key_read_at=timezone.now(), key_profile="default", key_url=f"http://10.20.30.41:8080/jw/{LONG}",
            activation_error="The node refused the license: Invalid license: it is not for this server's "
                             f"system key EE-0123456789ABCDEF0123456789ABCDEF ({LONG}).",
            read_error=f"Could not log in as admin at http://10.20.30.41:8080/jw/web/login ({LONG})")
    dep = Deployment.objects.create(cluster=c, status=Deployment.Status.FAILED, started_by=admin_user,
                                    finished=timezone.now(), steps=["tomcat.install", "tomcat.base"])
    for node in (nodes["app1"], nodes["app2"]):
        StepRun.objects.create(deployment=dep, step="tomcat.install", position=0, node=node,
                               status=StepRun.Status.FAILED, started=timezone.now(), finished=timezone.now(),
                               message=f"Cannot reach {node.address}:22: Connection refused ({LONG}).",
                               hint="Java must be installed", exit_code=255,
                               changes=[{"description": f"unpack apache-tomcat.tar.gz into /opt/{LONG}",
                                         "path": "/opt", "diff": "--- a\n+++ b\n+" + "y" * 300}])
    run = CheckRun.objects.create(cluster=c, status=CheckRun.Status.FAILED, finished=timezone.now())
    CheckResult.objects.create(check_run=run, item="shared_directory", node=nodes["app1"],
                               status=CheckResult.Status.FAIL, found=f"/opt/joget/wflow not writable {LONG}",
                               fix=f"Make /opt/joget/wflow writable {LONG}")
    Artifact.objects.create(cluster=c, kind=Artifact.Kind.JW_WAR, original_name="jw.war", size=1, sha256="a" * 64)
    CheckState.objects.create(cluster=c, node=nodes["app1"], key="http", state="bad", since=timezone.now(),
                              detail=f"connection refused {LONG}")
    Credential.objects.create(name="ops-key", kind=Credential.Kind.PASSWORD, password="p",
                              public_key="ssh-ed25519 " + "A" * 68)
    AuditEvent.objects.create(action=AuditEvent.Action.INVENTORY_IMPORTED, username="admin", target="cluster prod",
                              details=f"4 nodes; replaced the existing cluster, dropping 3 deployments {LONG}")
    return dep


def _too_wide(page) -> str:
    """'' when the page fits its viewport; else the widest elements, to say what sticks out."""
    return page.evaluate("""() => {
        const width = document.documentElement.clientWidth;
        if (document.documentElement.scrollWidth <= width) return "";
        const wide = [...document.querySelectorAll("body *")]
            .filter(e => e.getBoundingClientRect().right > width + 1)
            .map(e => `${e.tagName.toLowerCase()}${e.id ? "#" + e.id : ""}.${[...e.classList].join(".")}`);
        return `scrollWidth ${document.documentElement.scrollWidth} > ${width}: ${wide.slice(0, 8).join(" ")}`;
    }""")


PHONE_SHOTS = {"/clusters/prod/": "phone-overview", "/deployments/{dep}/": "phone-deployment",
               "/clusters/prod/licenses/": "phone-licenses"}


@pytest.mark.parametrize("width", [1280, 390])
def test_no_page_scrolls_sideways(live_server, cluster, browser_page, screenshot, width):
    page = browser_page
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, live_server.url, "/")
    wide = {}
    for template in PAGES:
        path = template.format(dep=cluster.pk)
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200, path
        if problem := _too_wide(page):
            wide[path] = problem
        if width == 390 and template in PHONE_SHOTS:
            screenshot(page, PHONE_SHOTS[template])
    assert not wide, "\n".join(f"{path}: {problem}" for path, problem in wide.items())


def test_licenses_table_fits_at_1280(live_server, cluster, browser_page):
    page = browser_page
    log_in(page, live_server.url, "/clusters/prod/licenses/")
    table = page.locator("table.licenses")
    fits = table.evaluate("t => t.getBoundingClientRect().right <= t.parentElement.getBoundingClientRect().right"
                          " && t.scrollWidth <= t.clientWidth")
    assert fits, table.evaluate("t => [t.scrollWidth, t.clientWidth, t.parentElement.clientWidth]")


def test_phone_menu_opens_the_navigation(live_server, cluster, browser_page):
    from playwright.sync_api import expect

    page = browser_page
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, live_server.url, "/")
    nav = page.locator(".sidebar")
    expect(nav).to_be_hidden()
    menu = page.get_by_role("button", name="Menu")
    menu.click()
    expect(nav).to_be_visible()
    expect(menu).to_have_attribute("aria-expanded", "true")
    nav.get_by_role("link", name="Audit trail").click()
    page.wait_for_url("**/audit/")
    expect(page.locator(".sidebar")).to_be_hidden()
    page.get_by_role("button", name="Menu").click()
    page.locator(".sidebar").get_by_role("link", name="Deploy wizard").click()
    page.wait_for_url("**/wizard/")
