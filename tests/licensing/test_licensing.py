"""Licensing without the testbed: services, state, exports, warnings, views and the command, against
in-process fake consoles (tests/licensing/fake_joget.py) standing in for two app servers."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from licensing import services, tasks
from licensing.models import License
from nodes.models import Cluster, LoadBalancer, Node
from tests.licensing.fake_joget import FakeJoget

pytestmark = pytest.mark.django_db
KEY1 = "EE-11111111111111111111111111111111"
KEY2 = "EE-22222222222222222222222222222222"
LICENSE1 = f"JOGET-LICENSE-v1 {KEY1} SIGNATURE-abcdefghijklmnop"


@pytest.fixture
def fakes():
    with FakeJoget(KEY1) as a, FakeJoget(KEY2) as b:
        yield a, b


@pytest.fixture
def cluster(fakes):
    c = Cluster.objects.create(name="prod", joget_admin_password="admin")
    for i, fake in enumerate(fakes, 1):
        Node.objects.create(cluster=c, name=f"app{i}", address="127.0.0.1", http_port=fake.port,
                            is_app_server=True, jvm_route=f"node0{i}")
    lb = Node.objects.create(cluster=c, name="lb", address="127.0.0.2", is_load_balancer=True)
    LoadBalancer.objects.create(cluster=c, node=lb, http_port=80)
    return c


def lic(name):
    return License.objects.select_related("node").get(node__name=name)


def read_all(cluster):
    return {x.node.name: x for x in services.refresh_cluster(cluster)}


def test_reads_each_key_from_its_own_node(cluster, fakes):
    got = read_all(cluster)
    assert set(got) == {"app1", "app2"}  # the balancer is no app server: never read
    for name, fake, key in [("app1", fakes[0], KEY1), ("app2", fakes[1], KEY2)]:
        x = got[name]
        assert (x.system_key, x.state, x.read_error, x.raw_page) == (key, License.State.KEY_READ, "", "")
        assert x.key_url == f"http://127.0.0.1:{fake.port}/jw/web/console/setting/license"
        # No SSH to these fake nodes (no host key pinned): the cluster's profile is recorded, flagged.
        assert (x.key_profile, x.key_profile_assumed) == ("default", True)
        assert [r["path"] for r in fake.requests] == ["/jw/j_spring_security_check",
                                                      "/jw/web/console/setting/license"]


def test_key_change_voids_an_activated_license_and_shows_everywhere(cluster, fakes, admin_client):
    read_all(cluster)
    services.save_license(lic("app1"), LICENSE1)
    assert lic("app1").state == License.State.REQUESTED
    x = services.activate(lic("app1").pk)
    assert (x.state, x.activated_key, x.activation_error) == (License.State.ACTIVATED, KEY1, "")
    assert fakes[0].license == LICENSE1
    fakes[0].key = "EE-33333333333333333333333333333333"  # e.g. a new network card
    x = services.read_key(x.pk)
    assert x.state == License.State.KEY_CHANGED and x.previous_key == KEY1 and x.key_changed_at
    page = admin_client.get(reverse("licensing:cluster_licenses", args=["prod"])).content.decode()
    assert "license void: key changed" in page and "License void on app1" in page
    detail = admin_client.get(cluster.get_absolute_url()).content.decode()
    assert 'id="license-void-banner"' in detail and "License void on app1" in detail
    # A new license requested for the new key, then activated: licensed again.
    assert services.mark_requested(cluster) == ["app1", "app2"]
    assert lic("app1").state == License.State.REQUESTED
    services.save_license(lic("app1"), "NEW EE-33333333333333333333333333333333")
    assert services.activate(lic("app1").pk).state == License.State.ACTIVATED


def test_a_refused_license_is_shown_refused_explained_and_not_kept(cluster, fakes, admin_client):
    read_all(cluster)
    secret = "WRONG-LICENSE-for-another-server-0123456789"
    services.save_license(lic("app2"), secret)
    x = services.activate(lic("app2").pk)
    assert x.state == License.State.REFUSED and x.activated_key == ""
    assert x.activation_error.startswith("The node refused the license: Invalid license: not for key")
    # The fake echoes the license in its error: the stored message and page carry only the masked form.
    assert secret not in x.activation_error and secret not in x.raw_page
    assert "WRON…6789 (43 characters)" in x.activation_error
    # Not the node's license: nothing to activate again.
    assert x.license_text == "" and x.license_for_key == ""
    page = admin_client.get(reverse("licensing:cluster_licenses", args=["prod"])).content.decode()
    assert '<span class="status bad">license refused</span>' in page
    assert "Leave empty to activate the stored license again" not in page
    # The right license pasted: activated.
    services.save_license(lic("app2"), f"RIGHT {KEY2}")
    assert services.activate(lic("app2").pk).state == License.State.ACTIVATED


def test_license_strings_are_encrypted_at_rest_and_masked_in_deployment_logs(cluster):
    read_all(cluster)
    services.save_license(lic("app1"), LICENSE1)
    with connection.cursor() as cur:
        cur.execute("SELECT license_text FROM licensing_license WHERE license_text <> ''")
        stored = cur.fetchone()[0]
    assert LICENSE1 not in stored and KEY1 not in stored
    from nodes.secrets import cluster_secrets, masker

    assert LICENSE1 in cluster_secrets(cluster)
    assert LICENSE1 not in masker(cluster_secrets(cluster))(f"echo {LICENSE1}")


def test_page_never_shows_a_license_in_full_and_escapes_the_raw_page(cluster, fakes, admin_client):
    read_all(cluster)
    services.save_license(lic("app1"), LICENSE1)
    services.activate(lic("app1").pk)
    fakes[1].page = "<html><script>alert('x')</script>Maintenance</html>"
    x = services.read_key(lic("app2").pk)
    assert x.state == License.State.KEY_READ and x.system_key == KEY2  # the last good key stays
    assert "JOGET_SYSTEM_KEY_PATTERN" in x.read_error and "Maintenance" in x.raw_page
    page = admin_client.get(reverse("licensing:cluster_licenses", args=["prod"])).content.decode()
    assert LICENSE1 not in page and "JOGE…mnop" in page
    assert "&lt;script&gt;alert(" in page and "<script>alert(" not in page
    assert '<details class="raw-page">' in page
    assert f'<code class="syskey" id="key-app1">{KEY1}</code>' in page and 'data-copy="#key-app1"' in page
    assert f"app1\t127.0.0.1:{fakes[0].port}\t{KEY1}" in page  # what "Copy all" copies


def test_wrong_admin_password(cluster, fakes):
    Cluster.objects.filter(pk=cluster.pk).update(joget_admin_password="")
    cluster.refresh_from_db()
    cluster.joget_admin_password = "wrong"
    cluster.save()
    x = read_all(cluster)["app1"]
    assert x.state == License.State.NO_KEY
    assert "refused the admin login as 'admin'" in x.read_error


def test_an_app_server_on_the_balancers_address_is_refused(cluster):
    Node.objects.filter(name="app1").update(address="127.0.0.2", http_port=80)
    x = read_all(cluster)["app1"]
    assert "is the load balancer's address" in x.read_error and x.system_key == ""


def test_profile_change_warning(cluster, admin_client):
    assert services.profile_change_warning(cluster) is None
    read_all(cluster)
    assert services.profile_change_warning(cluster) is None
    cluster.datasource_profile = "production"
    cluster.save()
    warning = services.profile_change_warning(cluster)
    assert "read with datasource profile 'default'" in warning and "set to 'production'" in warning
    assert "system keys read so far will no longer be valid" in warning
    services.save_license(lic("app1"), LICENSE1)
    services.activate(lic("app1").pk)
    assert "the licenses of app1 will be void" in services.profile_change_warning(cluster)
    page = admin_client.get(reverse("deployments:deployment_list", args=["prod"])).content.decode()
    assert 'id="license-profile-warning"' in page and "Before you deploy" in page


def test_exports_list_keys_never_licenses(cluster, admin_client):
    read_all(cluster)
    services.save_license(lic("app1"), LICENSE1)
    r = admin_client.get(reverse("licensing:export_csv", args=["prod"]))
    assert r["Content-Disposition"] == 'attachment; filename="system-keys-prod.csv"'
    rows = list(csv.DictReader(io.StringIO(r.content.decode())))
    assert [(x["node"], x["system_key"]) for x in rows] == [("app1", KEY1), ("app2", KEY2)]
    assert rows[0]["cluster"] == "prod" and rows[0]["state"] == "license requested"
    text = admin_client.get(reverse("licensing:export_request", args=["prod"])).content.decode()
    assert "License request: Joget cluster prod" in text
    assert any(line.split() == ["prod", "app1", f"127.0.0.1:{Node.objects.get(name='app1').http_port}", KEY1]
               for line in text.splitlines())
    for body in (r.content.decode(), text):
        assert LICENSE1 not in body and "SIGNATURE" not in body


@pytest.mark.parametrize("profile", ["=HYPERLINK(\"http://evil/\",\"x\")", "+1+1", "-2+3+cmd|' /C calc'!A0",
                                     "@SUM(1)", "\tx", "\rx"])
def test_csv_export_cells_are_never_formulas(cluster, admin_client, profile):
    # The profile is read from app_datasource.properties on the node, which the service user can write.
    read_all(cluster)
    License.objects.filter(node__name="app1").update(key_profile=profile)
    r = admin_client.get(reverse("licensing:export_csv", args=["prod"]))
    rows = list(csv.DictReader(io.StringIO(r.content.decode())))
    assert rows[0]["profile"] == "'" + profile.replace("\r", " ")
    assert rows[1]["profile"] == "default" and rows[0]["system_key"] == KEY1


def test_system_keys_command(cluster, fakes, capsys):
    call_command("system_keys", "prod", "--format", "json")
    assert json.loads(capsys.readouterr().out) == [
        {"node": "app1", "address": "127.0.0.1", "system_key": None},
        {"node": "app2", "address": "127.0.0.1", "system_key": None},
    ]
    call_command("system_keys", "prod", "--format", "json", "--refresh")
    assert [x["system_key"] for x in json.loads(capsys.readouterr().out)] == [KEY1, KEY2]
    call_command("system_keys", "prod", "--format", "csv")
    assert capsys.readouterr().out.splitlines()[0] == ",".join(services.EXPORT_COLUMNS)
    call_command("system_keys", "prod")
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["NODE", "ADDRESS", "SYSTEM"] and KEY2 in table[2]
    fakes[1].password = "changed"
    with pytest.raises(CommandError, match="app2: .*refused the admin login"):
        call_command("system_keys", "prod", "--refresh")
    with pytest.raises(CommandError, match="No cluster named 'nope'"):
        call_command("system_keys", "nope")


def test_views_need_login_and_post(admin_client, cluster):
    base = reverse("licensing:cluster_licenses", args=["prod"])
    assert Client().get(base).status_code == 302
    for name, args in [("read_keys", ["prod"]), ("mark_requested", ["prod"]), ("activate", ["prod", "app1"])]:
        assert admin_client.get(reverse(f"licensing:{name}", args=args)).status_code == 405
    assert admin_client.post(reverse("licensing:activate", args=["prod", "lb"])).status_code == 404
    assert admin_client.get(reverse("licensing:cluster_licenses", args=["nope"])).status_code == 404


def test_read_and_activate_views_queue_work_after_commit(cluster, admin_client, monkeypatch,
                                                         django_capture_on_commit_callbacks):
    # The tasks run in-process here; the full tests use the real worker.
    monkeypatch.setattr(tasks.read_key_task, "delay", lambda pk: tasks.read_key_task(pk))
    monkeypatch.setattr(tasks.activate_task, "delay", lambda pk: tasks.activate_task(pk))
    with django_capture_on_commit_callbacks(execute=True):
        r = admin_client.post(reverse("licensing:read_keys", args=["prod"]))
    assert r.status_code == 302 and lic("app1").system_key == KEY1 and lic("app1").busy == ""
    url = reverse("licensing:activate", args=["prod", "app1"])
    pk = lic("app1").pk
    r = admin_client.post(url, {f"n{pk}-license": ""}, follow=True)
    assert "Paste the license string" in r.content.decode() and lic("app1").license_text == ""
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url, {f"n{pk}-license": f"  {LICENSE1}\n"})
    x = lic("app1")
    assert (x.license_text, x.state) == (LICENSE1, License.State.ACTIVATED)
    # Polling stops (286) once nothing is running; a running read keeps it going.
    poll = admin_client.get(reverse("licensing:cluster_licenses", args=["prod"]), HTTP_HX_REQUEST="true")
    assert poll.status_code == 286
    monkeypatch.setattr(tasks.read_key_task, "delay", lambda pk: None)
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("licensing:read_keys", args=["prod"]), {"node": "app2"})
    poll = admin_client.get(reverse("licensing:cluster_licenses", args=["prod"]), HTTP_HX_REQUEST="true")
    assert poll.status_code == 200 and 'hx-trigger="every 1s"' in poll.content.decode()
    assert lic("app2").busy == "reading" and lic("app1").busy == ""


def test_a_busy_node_is_not_claimed_twice(cluster):
    x = services.licenses_for(cluster)[0]
    assert services._claim(x, License.Busy.READING)
    assert not services._claim(x, License.Busy.ACTIVATING)
    License.objects.filter(pk=x.pk).update(busy_since=timezone.now() - timedelta(hours=1))  # a lost worker
    assert services._claim(x, License.Busy.ACTIVATING)


def test_periodic_refresh_queues_clusters_with_a_password(cluster, monkeypatch, django_capture_on_commit_callbacks):
    queued = []
    monkeypatch.setattr(tasks.read_key_task, "delay", queued.append)
    Cluster.objects.create(name="nopass")
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.refresh_all_keys() == 2
    assert sorted(queued) == sorted(services.licenses_for(cluster)[i].pk for i in (0, 1))


@pytest.mark.parametrize("fields, state", [
    ({}, "no_key"),
    ({"system_key": "K1"}, "key_read"),
    ({"system_key": "K1", "requested_key": "K1"}, "requested"),
    ({"system_key": "K1", "license_for_key": "K1"}, "requested"),
    ({"system_key": "K1", "activated_key": "K1"}, "activated"),
    ({"system_key": "K1", "activated_key": "K1", "licensed_on_node": False}, "requested"),
    ({"system_key": "K2", "activated_key": "K1"}, "key_changed"),
    ({"system_key": "K2", "requested_key": "K1"}, "key_changed"),
    ({"system_key": "K2", "activated_key": "K1", "requested_key": "K2"}, "requested"),
])
def test_derive_state(fields, state):
    assert services.derive_state(License(**fields)) == state


def test_mask_license():
    assert services.mask_license("") == ""
    assert services.mask_license("short") == "•••• (5 characters)"
    assert services.mask_license(" ABCDEFGHIJKLMNOPQRST\n") == "ABCD…QRST (20 characters)"


@pytest.mark.parametrize("role, can_read, can_operate", [
    ("none", False, False), ("viewer", True, False), ("operator", True, True), ("admin", True, True)])
def test_roles(client, cluster, role, can_read, can_operate):
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user(f"u-{role}", password="pw-123456789")
    if role != "none":
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    client.force_login(user)
    for name in ("cluster_licenses", "export_csv", "export_request"):
        status = client.get(reverse(f"licensing:{name}", args=["prod"])).status_code
        assert (status == 200) == can_read and (status == 403) == (not can_read), (name, status)
    for name, args in [("read_keys", ["prod"]), ("mark_requested", ["prod"]), ("activate", ["prod", "app1"])]:
        status = client.post(reverse(f"licensing:{name}", args=args)).status_code
        assert (status == 403) == (not can_operate), (name, status)
    if can_read:
        page = client.get(reverse("licensing:cluster_licenses", args=["prod"])).content.decode()
        assert ("Read keys now" in page) == can_operate and ("Activate on app1" in page) == can_operate


def test_django_admin_never_shows_a_license(admin_client, cluster):
    read_all(cluster)
    services.save_license(lic("app1"), LICENSE1)
    body = admin_client.get(f"/admin/licensing/license/{lic('app1').pk}/change/").content.decode()
    assert LICENSE1 not in body and "JOGE…mnop" in body
    assert admin_client.get("/admin/licensing/license/").status_code == 200


@pytest.mark.parametrize("role,sees_raw", [("viewer", False), ("operator", False), ("admin", True)])
def test_the_raw_license_page_is_for_admins_only(cluster, fakes, client, role, sees_raw):
    from django.contrib.auth.models import Group, User

    read_all(cluster)
    fakes[1].page = "<html>Maintenance: internal build 4711 on host jw-int-07</html>"
    services.read_key(lic("app2").pk)
    user = User.objects.create_user(f"u-{role}", password="pw-123456789")
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    client.force_login(user)
    page = client.get(reverse("licensing:cluster_licenses", args=["prod"])).content.decode()
    assert "JOGET_SYSTEM_KEY_PATTERN" in page  # everyone sees why the key could not be read
    assert ("internal build 4711" in page) is sees_raw
    assert ('<details class="raw-page">' in page) is sees_raw
