"""The cluster page's panel of what Joget records (deployments/joget_state_views.py): read by a real worker over
SSH on the testbed, a stale servers.json entry removed (and a second removal changing nothing), the nodes wf_setup
records as licensed beside the console's licenses, builds that differ; and the panel in Chromium at 1280 and 390 px."""

from __future__ import annotations

import base64
import json
import time

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from deployments import engine
from deployments import joget_state as js
from deployments.models import JogetRecords
from licensing.models import License
from nodes.inventory import load_inventory
from nodes.models import AuditEvent, Cluster, Node
from nodes.testbed.standin import build_war
from tests.conftest import wait_for

STOPPED = 286  # htmx's "stop polling": the panel shows a finished reading


def test_servers_json_in_joget_format_and_the_older_one_is_rewritten_as_it_was():
    names, shape, extra = js.parse_servers('["node01","node02",""]')
    assert (names, shape) == (["node01", "node02", ""], "array")  # Gson's Set<String>, what ServerUtil writes
    state = js.ServersJson(names, shape=shape)
    assert json.loads(js.render_servers(state, ["node01"])) == ["node01"]
    names, shape, extra = js.parse_servers('{"servers": ["a"], "v": 1}')
    old = js.ServersJson(names, shape=shape, extra=extra)
    assert json.loads(js.render_servers(old, [])) == {"v": 1, "servers": []}
    assert js.parse_servers('{"nodes": 3}') is None and js.parse_servers("not json") is None


def user_with(django_user_model, role: str):
    user = django_user_model.objects.create_user(f"{role}-user", password="pw-123-pw-123")
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


def panel_when_read(client, cluster: Cluster, timeout: float = 120) -> str:
    """The panel as the page's poll gets it, once the reading it started (or the one under way) is done."""
    url = reverse("deployments:joget_records", args=[cluster.name])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(url, HTTP_HX_REQUEST="true")
        assert response.status_code in (200, STOPPED)
        if response.status_code == STOPPED:
            return response.content.decode()
        time.sleep(0.3)
    pytest.fail("the panel's reading did not finish")


def servers_json(tb, cluster) -> str:
    return tb.host_exec("app1", f"cat {cluster.wflow_home}/servers.json", check=True).stdout


@pytest.fixture
def light_cluster(light_testbed, celery_worker_process):
    inv = dict(light_testbed)
    inv["artifacts"] = []
    return load_inventory(inv, replace=True)


@pytest.mark.light
@pytest.mark.django_db(transaction=True)
def test_stale_entry_is_shown_removed_by_the_directory_owner_and_a_second_remove_changes_nothing(
        light_testbed, light_cluster, client, django_user_model):
    tb, cluster = light_testbed, light_cluster
    wflow = cluster.wflow_home
    # The wflow home belongs to the service user (as the deployment leaves it): that user, not root, rewrites it.
    owner = tb.host_exec("app1", f"stat -c %U:%G {wflow}", check=True).stdout.strip()
    tb.host_exec("app1", f"chown tomcat:tomcat {wflow} && printf '%s' '[\"node01\",\"node02\",\"old9\"]' > "
                         f"{wflow}/servers.json && chown tomcat:tomcat {wflow}/servers.json", check=True)
    try:
        client.force_login(user_with(django_user_model, "operator"))
        html = panel_when_read(client, cluster)
        assert 'data-entry="old9"' in html and "stale: no node of this cluster" in html
        assert html.count("Remove old9 from servers.json") == 1  # only the stale entry has the lever
        remove = reverse("deployments:joget_records_remove", args=[cluster.name])

        # A node of the cluster is refused at once, and nothing is queued.
        response = client.post(remove, {"entry": "node01"}, follow=True)
        assert "is a node of this cluster" in response.content.decode()
        assert JogetRecords.objects.get(cluster=cluster).busy == ""

        assert client.post(remove, {"entry": "old9"}).status_code == 302
        wait_for(lambda: JogetRecords.objects.get(cluster=cluster).busy == "", timeout=60, message="the removal")
        assert json.loads(servers_json(tb, cluster)) == ["node01", "node02"]  # Joget's own format kept
        listing = tb.host_exec("app1", f"stat -c '%U %n' {wflow}/servers.json {wflow}/servers.json.bak-*",
                               check=True).stdout.split("\n")
        assert listing[0] == f"tomcat {wflow}/servers.json" and len([x for x in listing if ".bak-" in x]) == 1
        html = panel_when_read(client, cluster)
        assert 'data-entry="old9"' not in html and "removed the stale entry &#x27;old9&#x27;" in html
        inode = tb.host_exec("app1", f"stat -c %i:%Y {wflow}/servers.json", check=True).stdout

        # The same removal again (a second click, a stale page): nothing is written.
        assert client.post(remove, {"entry": "old9"}).status_code == 302
        wait_for(lambda: JogetRecords.objects.get(cluster=cluster).busy == "", timeout=60, message="the removal")
        assert tb.host_exec("app1", f"stat -c %i:%Y {wflow}/servers.json", check=True).stdout == inode
        assert json.loads(servers_json(tb, cluster)) == ["node01", "node02"]
        assert tb.host_exec("app1", f"ls {wflow} | grep -c 'servers.json.bak-'").stdout.strip() == "1"
        assert "nothing changed" in JogetRecords.objects.get(cluster=cluster).last_removal
        details = list(AuditEvent.objects.filter(cluster=cluster.name, action=AuditEvent.Action.CLUSTER_CHANGED)
                       .order_by("time").values_list("username", "details"))
        assert details == [
            ("operator-user", "servers.json: removal of the stale entry 'old9' requested"),
            ("operator-user", "servers.json: removed the stale entry 'old9'"),
            ("operator-user", "servers.json: removal of the stale entry 'old9' requested"),
            ("operator-user", "servers.json: nothing changed, 'old9' is not a stale entry in it (already removed, "
                              "or a node of the cluster)")]

        # A viewer sees the panel but cannot remove.
        client.force_login(user_with(django_user_model, "viewer"))
        assert client.post(remove, {"entry": "old9"}).status_code == 403
        assert "Remove…" not in panel_when_read(client, cluster)
    finally:
        tb.host_exec("app1", f"rm -f {wflow}/servers.json {wflow}/servers.json.bak-*; chown {owner} {wflow}")


@pytest.mark.light
@pytest.mark.django_db(transaction=True)
def test_a_node_whose_stand_in_is_another_build_is_flagged(light_testbed, light_cluster, admin_client, tmp_path):
    tb, cluster = light_testbed, light_cluster
    bases = {n.name: n.effective_catalina_base for n in cluster.app_servers()}
    for host, version in (("app1", "8.1.6"), ("app2", "8.1.7")):
        # The stand-in's jw.war, as Tomcat leaves it deployed: the WAR and its unpacked webapp.
        war = base64.b64encode(build_war(tmp_path / host, version=version).read_bytes()).decode()
        tb.host_exec(host, f"mkdir -p {bases[host]}/webapps/jw && base64 -d > {bases[host]}/webapps/jw.war && "
                           f"cd {bases[host]}/webapps/jw && python3 -m zipfile -e ../jw.war .", input=war, check=True)
    try:
        html = panel_when_read(admin_client, cluster)
        assert 'id="build-mismatch"' in html
        app1 = html.split('data-build-node="app1"')[1].split("</tr>")[0]
        app2 = html.split('data-build-node="app2"')[1].split("</tr>")[0]
        assert "<code>8.1.6 (" in app1 and "<code>8.1.7 (" in app2
        assert html.count("differs from the other nodes") == 1  # one of two: flagged against the first found
        # No database on the light testbed: that part says why, the rest is shown.
        assert 'id="wf-setup-error"' in html and "could not read: " in html
    finally:
        for host in ("app1", "app2"):
            tb.host_exec(host, f"rm -rf {bases[host]}/webapps/jw {bases[host]}/webapps/jw.war")


@pytest.mark.full
@pytest.mark.django_db(transaction=True)
def test_nodes_joget_records_as_licensed_beside_the_console_licenses(full_testbed, celery_worker_process,
                                                                     admin_client):
    from tests.deployments.test_steps_database import DB_STEPS, FIXTURE, finished, sql_on_db, statuses

    tb = full_testbed
    inv = dict(tb)
    inv["artifacts"] = [{"kind": "schema_sql", "path": str(FIXTURE)}]
    cluster = load_inventory(inv, replace=True)
    dep = finished(engine.start(cluster, steps=DB_STEPS))
    assert dep.status == "succeeded", statuses(dep)
    db = cluster.layer("shared_database").name
    # wf_setup as Joget maps it (Setting.hbm.xml: id, property, value, ordering), with rows naming nodes.
    sql_on_db(tb, f"CREATE TABLE IF NOT EXISTS `{db}`.wf_setup (id varchar(255) NOT NULL, property varchar(255), "
                  f"value text, ordering int, PRIMARY KEY (id)); DELETE FROM `{db}`.wf_setup; "
                  f"INSERT INTO `{db}`.wf_setup VALUES ('1', 'license.node::node01', 'EE-1', NULL), "
                  f"('2', 'license.node::old9', 'EE-9', NULL), ('3', 'systemLocale', 'en_US', NULL);")
    app1, app2 = (Node.objects.get(cluster=cluster, name=n) for n in ("app1", "app2"))
    License.objects.create(node=app1, state=License.State.ACTIVATED, activated_at=timezone.now())
    License.objects.create(node=app2, state=License.State.ACTIVATED, activated_at=timezone.now())

    html = panel_when_read(admin_client, cluster)
    assert 'id="license-differences">2 differences' in html
    rows = {name: html.split(f'data-licensed="{name}"')[1].split("</tr>")[0] for name in ("node01", "node02", "old9")}
    assert "licensed" in rows["node01"] and "same" in rows["node01"]
    assert "activated in the console, not recorded by Joget" in rows["node02"]
    assert "no node of this cluster" in rows["old9"]
    assert "Joget records a license the console has not activated" in rows["old9"]
    # Read only: Joget's rows are as they were.
    assert sql_on_db(tb, f"SELECT COUNT(*) FROM `{db}`.wf_setup") == "3"


@pytest.mark.django_db
def test_remove_refuses_get_viewers_and_bad_names_and_changes_nothing(client, django_user_model):
    cluster = Cluster.objects.create(name="prod")
    Node.objects.create(cluster=cluster, name="app1", address="10.0.0.11", is_app_server=True, jvm_route="node01")
    remove = reverse("deployments:joget_records_remove", args=[cluster.name])
    client.force_login(user_with(django_user_model, "viewer"))
    assert client.get(remove).status_code == 405
    assert client.post(remove, {"entry": "old9"}).status_code == 403
    client.force_login(user_with(django_user_model, "operator"))
    for entry, said in (("bad\nname", "at most 200 printable characters"), ("x" * 201, "at most 200"),
                        ("node01", "is a node of this cluster"), ("app1", "is a node of this cluster")):
        page = client.post(remove, {"entry": entry}, follow=True).content.decode()
        assert said in page, entry
    assert client.post(reverse("deployments:joget_records_remove", args=["nope"]), {"entry": "x"}).status_code == 404
    assert not JogetRecords.objects.filter(busy="removing").exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.CLUSTER_CHANGED).exists()


@pytest.mark.django_db
def test_a_reading_no_worker_finished_is_said_and_only_read_now_queues_it_again(admin_client):
    cluster = Cluster.objects.create(name="prod")
    started = timezone.now() - timezone.timedelta(seconds=js.LOST_SECONDS + 5)
    JogetRecords.objects.create(cluster=cluster, busy=JogetRecords.Busy.READING, busy_since=started)
    url = reverse("deployments:joget_records", args=[cluster.name])
    response = admin_client.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == STOPPED  # nothing runs: the poll stops
    assert "could not read: no worker finished (reading) within 3 minutes" in response.content.decode()
    assert JogetRecords.objects.get(cluster=cluster).busy_since == started  # opening the page queued nothing
    admin_client.post(reverse("deployments:joget_records_read", args=[cluster.name]))
    assert JogetRecords.objects.get(cluster=cluster).busy_since > started  # Read now did


@pytest.fixture
def recorded(admin_user):
    """A cluster whose last reading (as a worker stores it) has a stale entry, a license difference, two builds."""
    cluster = Cluster.objects.create(name="prod", wflow_home="/opt/joget/wflow")
    nodes = [Node.objects.create(cluster=cluster, name=f"app{i}", address=f"10.0.0.1{i}", is_app_server=True,
                                 jvm_route=f"node0{i}") for i in (1, 2)]
    License.objects.create(node=nodes[0], state=License.State.ACTIVATED)
    JogetRecords.objects.create(cluster=cluster, read_at=timezone.now(), reading={
        "servers": {"names": ["node01", "node02", "jw-old-node-from-last-year"],
                    "stale": ["jw-old-node-from-last-year"], "error": ""},
        "builds": {"app1": "8.1.6 (0123456789ab)", "app2": "8.1.7 (ba9876543210)"},
        "wf_setup": {"names": ["node01", "node02"], "error": ""}})
    return cluster


@pytest.mark.browser
@pytest.mark.timeout(180)
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("width", [1280, 390])
def test_the_panel_in_chromium(live_server, recorded, browser_page, screenshot, width):
    from playwright.sync_api import expect

    from tests.browser_plugin import log_in
    from tests.e2e.test_layout_browser import _too_wide

    page = browser_page
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, live_server.url, "/clusters/prod/")
    panel = page.locator("#joget-records-card")
    stale = panel.locator('tr[data-entry="jw-old-node-from-last-year"]')
    expect(stale).to_contain_text("stale: no node of this cluster")
    expect(panel.locator('tr[data-entry="node01"]')).to_contain_text("a node of this cluster")
    expect(panel.locator("#license-differences")).to_have_text("1 difference between Joget's record and the console")
    expect(panel.locator('tr[data-licensed="node02"]')).to_contain_text("Joget records a license the console has "
                                                                        "not activated")
    expect(panel.locator("#build-mismatch")).to_be_visible()
    expect(panel.locator('tr[data-build-node="app2"]')).to_contain_text("differs from the other nodes")
    stale.locator("summary", has_text="Remove…").click()
    confirm = stale.get_by_role("button", name="Remove jw-old-node-from-last-year from servers.json")
    expect(confirm).to_be_visible()
    assert not _too_wide(page), _too_wide(page)
    screenshot(page, f"joget-records-{width}")
