"""Status pages (nodes/status_views.py): the cluster at a glance, changes since the last look, a node's
checks and 24-hour chart, the catalina.out tail through a task, roles, and no SSH inside a request."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse
from django.utils import timezone

from nodes import health, status_views
from nodes.inventory import load_inventory
from nodes.models import CatalinaTail, CheckState, Cluster, HealthEvent, HealthRun, HealthSample, Node, NodeHealth
from tests.conftest import wait_for

S = health.HealthState


def state(cluster, node, key, st, since, detail=""):
    return CheckState(cluster=cluster, node=node, key=key, state=st, since=since, detail=detail)


@pytest.fixture
def world(db):
    now = timezone.now()
    cluster = Cluster.objects.create(name="prod")
    app1 = Node.objects.create(cluster=cluster, name="app1", address="10.0.0.101", is_app_server=True,
                               jvm_route="node01")
    app2 = Node.objects.create(cluster=cluster, name="app2", address="10.0.0.102", is_app_server=True,
                               jvm_route="node02")
    dbn = Node.objects.create(cluster=cluster, name="db", address="10.0.0.20", is_database=True)
    hour = timedelta(hours=1)
    CheckState.objects.bulk_create([
        state(cluster, app1, "ssh", S.OK, now - 5 * hour),
        state(cluster, app1, "tomcat", S.BAD, now - hour, "no Tomcat process with -Dcatalina.base=/opt/b"),
        state(cluster, app1, "replication", S.UNKNOWN, now - hour, "Tomcat is not running"),
        state(cluster, app2, "ssh", S.OK, now - 5 * hour),
        state(cluster, app2, "tomcat", S.OK, now - 2 * hour),
        state(cluster, dbn, "ssh", S.OK, now - 5 * hour),
        state(cluster, dbn, "database", S.OK, now - 3 * hour, "joget@jwdb logged in"),
    ])
    for node, ms in ((app1, 40), (app2, 41), (dbn, 42)):
        NodeHealth.objects.create(node=node, checked_at=now, ssh_ms=ms, http_ms=7, load_x100=52, mem_pct=30,
                                  disk_pct=20, level=0, up=True,
                                  details={"tomcat": ["bad", "no Tomcat process now"]} if node is app1 else {})
    HealthEvent.objects.bulk_create([
        HealthEvent(cluster=cluster, node=app1, key="tomcat", time=now - hour, old_state=S.OK, new_state=S.BAD,
                    detail="no Tomcat process"),
        HealthEvent(cluster=cluster, node=app2, key="ssh", time=now - 30 * hour, old_state=S.BAD, new_state=S.OK,
                    detail="an old change"),
    ])
    # 24 hours of app1 at 30 s, down for the last hour, with a 2-hour gap (no samples) 6 hours ago.
    samples = []
    for i in range(2880):
        t = now - timedelta(seconds=30 * i)
        if 6 * hour <= now - t < 8 * hour:
            continue
        up = now - t > hour
        samples.append(HealthSample(node=app1, time=t, level=0 if up else 2, up=up, ssh_ms=40 + i % 7,
                                    http_ms=10 if up else None))
    HealthSample.objects.bulk_create(samples)
    HealthRun.objects.create(cluster=cluster, started=now, finished=now, duration_ms=310, nodes=3)
    return {"cluster": cluster, "app1": app1, "app2": app2, "db": dbn, "now": now}


def get(client, url, **kw):
    r = client.get(url, **kw)
    assert r.status_code == 200, r.status_code
    return r.content.decode()


def status_url(name="prod"):
    return reverse("nodes:cluster_status", args=[name])


def test_cluster_page_summary_tiles_and_rows(admin_client, world):
    html = get(admin_client, status_url())
    assert "Red: failing" in html
    assert re.search(r"1 failing</span>\s*<span class=\"status warn\">0 warning</span>\s*"
                     r"<span class=\"status ok\">2 healthy</span>", html)
    rows = re.findall(r'<tr data-node="(\w+)" data-state="(\w+)">', html)
    assert rows == [("app1", "bad"), ("app2", "ok"), ("db", "ok")]  # worst first
    assert 'href="/clusters/prod/nodes/app1/status/"' in html
    assert 'title="no Tomcat process with -Dcatalina.base=/opt/b">Tomcat process</span>' in html
    assert "40 ms" in html and "0.52" in html and "3 nodes in 310 ms" in html
    # the link from the cluster page
    assert 'href="/clusters/prod/status/"' in get(admin_client, world["cluster"].get_absolute_url())


def test_changes_since_the_last_look(admin_client, world):
    html = get(admin_client, status_url())
    assert "Changes in the last 24 hours" in html and "no Tomcat process" in html and "an old change" not in html
    assert "Nothing changed." in get(admin_client, status_url())  # nothing since that look
    HealthEvent.objects.create(cluster=world["cluster"], node=world["app2"], key="tomcat", time=timezone.now(),
                               old_state=S.OK, new_state=S.BAD, detail="it stopped just now")
    html = get(admin_client, status_url())
    assert "Changed since your last look" in html and "it stopped just now" in html
    assert "no Tomcat process</td>" not in html  # older than the last look


def test_the_polled_body_keeps_the_pages_reference_time(admin_client, world):
    html = get(admin_client, status_url())
    body_url = re.search(r'hx-get="([^"]+)" hx-trigger="every (\d+)s" hx-swap="outerHTML"', html)
    assert body_url and int(body_url.group(2)) == status_views.poll_seconds() == 15
    url = body_url.group(1).replace("&amp;", "&")
    HealthEvent.objects.create(cluster=world["cluster"], node=world["app2"], key="http", time=timezone.now(),
                               old_state=S.OK, new_state=S.BAD, detail="refused while watching")
    fragment = get(admin_client, url, HTTP_HX_REQUEST="true")
    assert "<html" not in fragment and "refused while watching" in fragment and "no Tomcat process</td>" in fragment
    # Polling is not a look: the next full page still lists what happened since the page was opened.
    assert "refused while watching" in get(admin_client, status_url())


def test_pages_never_open_ssh(admin_client, world, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("SSH inside a request")

    monkeypatch.setattr("nodes.ssh.open_connection", refuse)
    monkeypatch.setattr("nodes.ssh.NodeConnection.open", refuse)
    for url in (status_url(), reverse("nodes:cluster_status_body", args=["prod"]),
                reverse("nodes:node_status", args=["prod", "app1"]),
                reverse("nodes:node_status_checks", args=["prod", "app1"])):
        get(admin_client, url)


def test_node_page_checks_chart_and_events(admin_client, world):
    html = get(admin_client, reverse("nodes:node_status", args=["prod", "app1"]))
    checks = re.findall(r'<tr data-check="(\w+)" data-state="(\w+)">', html)
    assert checks == [("ssh", "ok"), ("tomcat", "bad"), ("replication", "unknown")]  # in CHECKS order
    assert "now: no Tomcat process now" in html  # the latest cycle's detail, beside the one at the change
    assert html.count('<polyline class="ssh"') == 2  # the gap splits the line
    assert 'class="strip-bad"' in html and 'class="strip-none"' in html and 'class="strip-ok"' in html
    assert "samples, up" in html and "Show the last 200 lines" in html
    assert 'data-event="tomcat"' in html
    db_html = get(admin_client, reverse("nodes:node_status", args=["prod", "db"]))
    assert "No sample in the last 24 hours." in db_html and "catalina.out" not in db_html


def test_history_chart_from_samples():
    now = timezone.now()
    ten = timedelta(minutes=10)
    samples = [(now - 30 * ten, 0, True, 100, 20), (now - 29 * ten, 0, True, 200, 40),
               (now - 5 * ten, 2, False, None, None), (now - 4 * ten, 0, True, 100, None)]
    chart = status_views.history_chart(samples, now)
    assert chart["ymax"] == 200 and chart["samples"] == 4 and chart["down"] == 1 and chart["up_pct"] == 75.0
    assert len(chart["ssh"]) == 2 and len(chart["http"]) == 1  # the lone last ssh point is drawn as a tick
    kinds = [r["kind"] for r in chart["strip"]]
    assert kinds[0] == "none" and "bad" in kinds and kinds.count("ok") == 2
    total = sum(float(r["w"]) for r in chart["strip"])
    assert abs(total - status_views.CHART_W) < 1
    assert status_views.history_chart([], now)["samples"] == 0


def test_catalina_tail_is_a_task_polled_by_the_page(admin_client, world, monkeypatch,
                                                     django_capture_on_commit_callbacks):
    queued = []
    monkeypatch.setattr("nodes.tasks.fetch_catalina_tail.delay", queued.append)
    url = reverse("nodes:node_catalina_request", args=["prod", "app1"])
    with django_capture_on_commit_callbacks(execute=True):
        r = admin_client.post(url, {"lines": "50"}, HTTP_HX_REQUEST="true")
    tail = CatalinaTail.objects.get()
    assert queued == [tail.pk] and tail.lines == 50
    poll = reverse("nodes:node_catalina_tail", args=["prod", "app1", tail.pk])
    assert f'hx-get="{poll}" hx-trigger="every 1s"' in r.content.decode()
    r = admin_client.get(poll, HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and "Fetching the last 50 lines" in r.content.decode()
    CatalinaTail.objects.filter(pk=tail.pk).update(finished_at=timezone.now(), text="SEVERE <boom>\n",
                                                   path="/opt/b/logs/catalina.out")
    r = admin_client.get(poll, HTTP_HX_REQUEST="true")
    assert r.status_code == 286  # htmx: stop polling
    assert "SEVERE &lt;boom&gt;" in r.content.decode() and "Fetch again" in r.content.decode()
    other = Cluster.objects.create(name="other")
    Node.objects.create(cluster=other, name="app1", address="10.0.1.1", is_app_server=True, jvm_route="node01")
    assert admin_client.get(reverse("nodes:node_catalina_tail", args=["other", "app1", tail.pk])).status_code == 404


def test_check_now_queues_the_cluster(admin_client, world, monkeypatch, django_capture_on_commit_callbacks):
    queued = []
    monkeypatch.setattr("nodes.tasks.check_cluster.delay", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        r = admin_client.post(reverse("nodes:cluster_check_now", args=["prod"]), HTTP_HX_REQUEST="true")
    assert queued == [world["cluster"].pk] and "Check queued" in r.content.decode()


@pytest.mark.parametrize("role,reads,acts", [("none", 403, 403), ("viewer", 200, 403), ("operator", 200, 200),
                                             ("admin", 200, 200)])
def test_roles(client, world, monkeypatch, role, reads, acts):
    monkeypatch.setattr("nodes.tasks.check_cluster.delay", lambda *a: None)
    monkeypatch.setattr("nodes.tasks.fetch_catalina_tail.delay", lambda *a: None)
    user = User.objects.create_user(f"u-{role}", password="pw-123456789")
    if role != "none":
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    client.force_login(user)
    for url in (status_url(), reverse("nodes:node_status", args=["prod", "app1"])):
        assert client.get(url).status_code == reads
    for url in (reverse("nodes:cluster_check_now", args=["prod"]),
                reverse("nodes:node_catalina_request", args=["prod", "app1"])):
        assert client.post(url, HTTP_HX_REQUEST="true").status_code == acts
        assert client.get(url).status_code == 405


def test_anonymous_goes_to_login(client, world):
    r = client.get(status_url())
    assert r.status_code == 302 and r["Location"].startswith("/login/")


def test_a_cluster_never_checked(admin_client, db):
    Cluster.objects.create(name="fresh")
    html = get(admin_client, status_url("fresh"))
    assert "Not checked yet" in html and "No check cycle has finished yet" in html and "No node in this cluster" in html


@pytest.mark.full
@pytest.mark.django_db(transaction=True)
def test_catalina_tail_through_the_real_worker(full_testbed, celery_worker_process, admin_client):
    inv = dict(full_testbed)
    inv["artifacts"] = []
    cluster = load_inventory(inv, replace=True)
    # A CATALINA_BASE of this test's own: the session's testbed is shared with the deployment tests.
    Node.objects.filter(cluster=cluster, is_app_server=True).update(catalina_base="/opt/jcc-tail-test")
    full_testbed.host_exec("app1", "mkdir -p /opt/jcc-tail-test/logs && for i in $(seq 1 300); do "
                                   "echo \"line $i\"; done > /opt/jcc-tail-test/logs/catalina.out", check=True)
    try:
        tail_on_the_testbed(cluster, admin_client)
    finally:
        full_testbed.host_exec("app1", "rm -rf /opt/jcc-tail-test")


def tail_on_the_testbed(cluster, admin_client):
    r = admin_client.post(reverse("nodes:node_catalina_request", args=[cluster.name, "app1"]), {"lines": "20"},
                          HTTP_HX_REQUEST="true")
    poll = re.search(r'hx-get="([^"]+)"', r.content.decode()).group(1)

    def finished():
        resp = admin_client.get(poll, HTTP_HX_REQUEST="true")
        return resp if resp.status_code == 286 else None

    html = wait_for(finished, timeout=20, interval=0.2, message="the tail fetched by the worker").content.decode()
    assert "line 281\nline 282" in html and "line 300" in html and "line 280\n" not in html
    assert "/opt/jcc-tail-test/logs/catalina.out" in html
    # A node without the file: the error is shown, not a blank box.
    r = admin_client.post(reverse("nodes:node_catalina_request", args=[cluster.name, "app2"]), HTTP_HX_REQUEST="true")
    poll = re.search(r'hx-get="([^"]+)"', r.content.decode()).group(1)
    html = wait_for(finished, timeout=20, interval=0.2, message="the second tail").content.decode()
    assert "no such file: /opt/jcc-tail-test/logs/catalina.out" in html


def test_catalina_tail_masks_the_clusters_secrets(world, monkeypatch, client):
    """A viewer reads the tail: passwords Tomcat or Joget print (a JDBC URL, the admin login) are masked."""
    from contextlib import contextmanager
    from types import SimpleNamespace

    from django.contrib.auth.models import Group, User

    from nodes.models import SharedDatabase

    cluster = world["cluster"]
    SharedDatabase.objects.create(cluster=cluster, name="jwdb", user="joget", password="db-Pa55-word")
    cluster.joget_admin_password = "joget-admin-secret"
    cluster.save()
    printed = ("SEVERE jdbc:mariadb://db/jwdb?user=joget&password=db-Pa55-word refused\n"
               "INFO login admin/joget-admin-secret\n")

    @contextmanager
    def fake_connection(node, **kwargs):
        yield SimpleNamespace(run=lambda command, timeout: SimpleNamespace(stdout=printed, stderr="", ok=True,
                                                                             exit_code=0))

    monkeypatch.setattr("nodes.ssh.open_connection", fake_connection)
    tail = CatalinaTail.objects.create(node=world["app1"], lines=50)
    health.fetch_catalina_tail(tail.pk)
    viewer = User.objects.create_user("vera", password="pw-123456789")
    viewer.groups.add(Group.objects.get_or_create(name="viewer")[0])
    client.force_login(viewer)
    r = client.get(reverse("nodes:node_catalina_tail", args=["prod", "app1", tail.pk]), HTTP_HX_REQUEST="true")
    page = r.content.decode()
    assert r.status_code == 286 and "SEVERE jdbc:mariadb://db/jwdb" in page and "refused" in page
    assert "db-Pa55-word" not in page and "joget-admin-secret" not in page
    assert "db-Pa55-word" not in CatalinaTail.objects.get(pk=tail.pk).text
