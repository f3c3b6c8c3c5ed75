"""The audit trail: every kind of event recorded by doing the real thing through the
web pages, the page's filters, append-only rows, and no secret in any row."""

import datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.contrib.auth.models import Group, Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from deployments.models import Deployment, StepRun
from licensing.models import License
from nodes import ssh
from nodes.models import AuditEvent, Cluster, Credential, Node

pytestmark = pytest.mark.django_db
A = AuditEvent.Action

SSH_PASSWORD = "Tr0ub4dor&3-not-in-any-row"
DB_PASSWORD = "db-pw-'quoted' never logged"
JOGET_PASSWORD = "joget-admin-pw-9f8e7d"
LICENSE = "LICENSE-TEXT-0123456789abcdef-SECRET"


def host_key() -> str:
    public = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return public.decode()


def user(role: str, name: str | None = None) -> User:
    u = User.objects.create_user(name or f"u-{role}", password="pw-123456789")
    u.groups.add(Group.objects.get_or_create(name=role)[0])
    return u


def events(action):
    return list(AuditEvent.objects.filter(action=action))


def cluster_data(**kw):
    return {"name": "prod", "joget_version": "8.1", "context_path": "/jw", "wflow_home": "/opt/joget/wflow",
            "datasource_profile": "default", "multicast": "on", "joget_admin_user": "admin", **kw}


NODE = {"name": "app1", "address": "10.0.0.11", "roles": ["app_server"], "ssh_port": 22, "ssh_user": "root",
        "jvm_route": "node01", "http_port": 8080, "install_path": "/opt/joget"}


# -- logins --------------------------------------------------------------------------------------------

def test_login_success_failure_and_logout_are_recorded(client):
    alice = user("viewer", "alice")
    r = client.post("/login/", {"username": "alice", "password": "wrong-password"})
    assert r.status_code == 200
    [failed] = events(A.LOGIN_FAILED)
    assert failed.username == "alice" and failed.actor is None and failed.source_ip == "127.0.0.1"
    assert "wrong-password" not in failed.details

    r = client.post("/login/", {"username": "alice", "password": "pw-123456789"})
    assert r.status_code == 302
    [login] = events(A.LOGIN)
    assert login.actor == alice and login.username == "alice" and login.source_ip == "127.0.0.1"

    client.post("/logout/")
    [logout] = events(A.LOGOUT)
    assert logout.actor == alice and logout.username == "alice"


def test_deleting_a_user_keeps_their_events(client):
    bob = user("admin", "bob")
    client.post("/login/", {"username": "bob", "password": "pw-123456789"})
    bob.delete()
    [login] = events(A.LOGIN)
    assert login.actor is None and login.username == "bob"


# -- inventory ---------------------------------------------------------------------------------------------

def test_inventory_changes_are_recorded_with_actor_and_cluster(client):
    client.force_login(user("admin", "carol"))

    assert client.post(reverse("nodes:cluster_create"),
                       cluster_data(joget_admin_password=JOGET_PASSWORD)).status_code == 302
    assert client.post(reverse("nodes:cluster_edit", args=["prod"]),
                       cluster_data(joget_version="8.2")).status_code == 302
    r = client.post(reverse("nodes:node_create", args=["prod"]), NODE, HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and Node.objects.filter(name="app1").exists()
    client.post(reverse("nodes:node_edit", args=["prod", "app1"]), {**NODE, "http_port": 8081})
    db = Node.objects.create(cluster=Cluster.objects.get(name="prod"), name="db", address="10.0.0.20",
                             is_database=True)
    layer = {"mode": "managed", "node": db.pk, "engine": "mariadb", "port": 3306, "name": "jwdb", "user": "joget"}
    client.post(reverse("nodes:layer_edit", args=["prod", "shared-database"]), {**layer, "password": DB_PASSWORD})
    client.post(reverse("nodes:layer_edit", args=["prod", "shared-database"]), {**layer, "port": 3307})
    client.post(reverse("nodes:node_delete", args=["prod", "app1"]))
    assert not Node.objects.filter(name="app1").exists()

    [created] = events(A.CLUSTER_CREATED)
    assert (created.username, created.cluster, created.target) == ("carol", "prod", "cluster prod")
    assert created.source_ip == "127.0.0.1"
    [changed] = events(A.CLUSTER_CHANGED)
    assert changed.details == "changed: joget_version"
    [node_created] = events(A.NODE_CREATED)
    assert (node_created.cluster, node_created.target) == ("prod", "node app1 (10.0.0.11)")
    [node_changed] = events(A.NODE_CHANGED)
    assert node_changed.details == "changed: http_port"
    [layer_created] = events(A.LAYER_CREATED)
    assert layer_created.cluster == "prod" and "shared database" in layer_created.target
    [layer_changed] = events(A.LAYER_CHANGED)
    assert layer_changed.details == "changed: port"
    [node_deleted] = events(A.NODE_DELETED)
    assert (node_deleted.cluster, node_deleted.target) == ("prod", "node app1 (10.0.0.11)")

    client.post(reverse("nodes:cluster_delete", args=["prod"]))
    [deleted] = events(A.CLUSTER_DELETED)
    assert (deleted.cluster, deleted.target, deleted.details) == ("prod", "cluster prod", "with 1 nodes")
    # The cluster is gone; its history still names it.
    assert AuditEvent.objects.filter(cluster="prod").count() == 8


def test_credentials_and_import_are_recorded(client):
    client.force_login(user("admin", "dave"))
    r = client.post(reverse("nodes:credential_create"),
                    {"name": "root-pw", "kind": "password", "password": SSH_PASSWORD})
    assert r.status_code == 302 and Credential.objects.get(name="root-pw").password == SSH_PASSWORD
    client.post(reverse("nodes:credential_generate"), {"name": "deploy"})
    doc = b'{"cluster": "imp", "nodes": [{"name": "a", "address": "10.0.0.1", "roles": ["database"]}]}'
    r = client.post(reverse("nodes:cluster_import"), {"file": SimpleUploadedFile("inv.json", doc)})
    assert r.status_code == 302

    [cred] = events(A.CREDENTIAL_CREATED)
    assert (cred.username, cred.target, cred.cluster) == ("dave", "credential root-pw", "")
    [gen] = events(A.CREDENTIAL_GENERATED)
    assert gen.target == "credential deploy"
    [imp] = events(A.INVENTORY_IMPORTED)
    assert (imp.cluster, imp.details) == ("imp", "1 nodes")


def test_wizard_create_and_import_are_recorded(client):
    client.force_login(user("admin", "erin"))
    r = client.post(reverse("deployments:wizard_start"),
                    {"action": "create", **{f"c-{k}": v for k, v in cluster_data(name="wiz").items()}})
    assert r.status_code == 302
    doc = b'{"cluster": "wimp", "nodes": [{"name": "a", "address": "10.0.0.1", "roles": ["database"]}]}'
    client.post(reverse("deployments:wizard_start"), {"action": "import", "file": SimpleUploadedFile("i.json", doc)})
    [created] = events(A.CLUSTER_CREATED)
    assert (created.cluster, created.username) == ("wiz", "erin")
    [imp] = events(A.INVENTORY_IMPORTED)
    assert imp.cluster == "wimp"


def test_uploads_checklist_runs_and_the_inventory_commands_are_recorded(client, tmp_path):
    from django.core.management import call_command

    client.force_login(user("admin", "gwen"))
    Cluster.objects.create(name="prod")
    client.post(reverse("deployments:wizard_upload", args=["prod"]),
                {"kind": "jw_war", "file": SimpleUploadedFile("jw.war", b"PK\x03\x04war")})
    client.post(reverse("deployments:checklist_run", args=["prod"]))
    doc = tmp_path / "inv.json"
    doc.write_text('{"cluster": "cli", "nodes": [{"name": "a", "address": "10.0.0.1", "roles": ["database"]}]}')
    call_command("import_inventory", str(doc), stdout=open(tmp_path / "out", "w"))  # noqa: SIM115
    call_command("export_inventory", "cli", stdout=open(tmp_path / "plain", "w"))  # noqa: SIM115
    call_command("export_inventory", "cli", "--include-secrets", stdout=open(tmp_path / "full", "w"))  # noqa: SIM115

    [upload] = events(A.ARTIFACT_UPLOADED)
    assert (upload.username, upload.cluster) == ("gwen", "prod") and "jw.war: 7 bytes, sha256 " in upload.details
    [check] = events(A.CHECKLIST_RUN)
    assert (check.username, check.cluster) == ("gwen", "prod") and check.details.startswith("checklist #")
    [imp] = events(A.INVENTORY_IMPORTED)
    assert (imp.username, imp.cluster, imp.actor) == ("(command line)", "cli", None)
    [exported] = events(A.INVENTORY_EXPORTED)  # only the export that carries the password
    assert (exported.username, exported.cluster) == ("(command line)", "cli")


# -- host keys -------------------------------------------------------------------------------------------

def test_host_key_mismatch_seen_once_and_confirmation_recorded(client):
    client.force_login(user("admin", "frank"))
    old, new = host_key(), host_key()
    cluster = Cluster.objects.create(name="prod")
    node = Node.objects.create(cluster=cluster, name="app1", address="10.0.0.11", host_key=old,
                               offered_host_key=new, offered_host_key_at=timezone.now())
    url = reverse("nodes:node_host_key", args=["prod", "app1"])
    client.get(url, HTTP_HX_REQUEST="true")
    client.get(url, HTTP_HX_REQUEST="true")  # the fragment is polled: still one event
    [mismatch] = events(A.HOST_KEY_MISMATCH)
    assert mismatch.cluster == "prod" and mismatch.target == "node app1 (10.0.0.11)"
    assert mismatch.details == f"pinned {ssh.fingerprint(old)}, offered {ssh.fingerprint(new)}"

    confirm = reverse("nodes:node_confirm_host_key", args=["prod", "app1"])
    client.post(confirm, {"fingerprint": ssh.fingerprint(host_key())})  # not the key offered
    assert len(events(A.HOST_KEY_MISMATCH)) == 2 and not events(A.HOST_KEY_CONFIRMED)

    client.post(confirm, {"fingerprint": ssh.fingerprint(new)})
    node.refresh_from_db()
    assert node.host_key == new
    [confirmed] = events(A.HOST_KEY_CONFIRMED)
    assert confirmed.details == f"pinned {ssh.fingerprint(new)}, replacing {ssh.fingerprint(old)}"
    assert confirmed.username == "frank"


# -- deployments and licenses -------------------------------------------------------------------------------

@pytest.fixture
def pinned_cluster():
    cluster = Cluster.objects.create(name="prod")
    node = Node.objects.create(cluster=cluster, name="app1", address="10.0.0.11", is_app_server=True,
                               jvm_route="node01", host_key=host_key())
    return cluster, node


def test_deployment_levers_are_recorded(client, pinned_cluster):
    cluster, node = pinned_cluster
    client.force_login(user("operator", "grace"))
    r = client.post(reverse("deployments:deployment_start", args=["prod"]), {"steps": "test.marker", "dry_run": "1"})
    assert r.status_code == 302
    dep = Deployment.objects.get()
    [started] = events(A.DEPLOYMENT_STARTED)
    assert (started.username, started.cluster, started.target) == ("grace", "prod", f"deployment #{dep.pk}")
    assert started.details == "dry run; steps: test.marker"

    client.post(reverse("deployments:deployment_cancel", args=[dep.pk]))
    [cancelled] = events(A.DEPLOYMENT_CANCELLED)
    assert cancelled.target == f"deployment #{dep.pk}"

    failed = Deployment.objects.create(cluster=cluster, status=Deployment.Status.FAILED)
    StepRun.objects.create(deployment=failed, step="test.marker", position=0, node=node,
                           status=StepRun.Status.FAILED)
    Deployment.objects.filter(pk=dep.pk).update(status=Deployment.Status.CANCELLED)
    client.post(reverse("deployments:deployment_retry", args=[failed.pk]), {"step": "test.marker"})
    [retried] = events(A.DEPLOYMENT_RETRIED)
    assert (retried.target, retried.details) == (f"deployment #{failed.pk}", "step test.marker")

    Deployment.objects.filter(pk=failed.pk).update(status=Deployment.Status.FAILED)
    client.post(reverse("deployments:deployment_resume", args=[failed.pk]))
    [resumed] = events(A.DEPLOYMENT_RESUMED)
    assert resumed.cluster == "prod"

    # A refused lever changed nothing, so it records nothing.
    client.post(reverse("deployments:deployment_retry", args=[failed.pk]), {"step": "no.such"})
    assert len(events(A.DEPLOYMENT_RETRIED)) == 1


def test_license_activation_is_recorded_without_the_license(client, pinned_cluster):
    _, node = pinned_cluster
    lic = License.objects.create(node=node, system_key="EE-" + "a" * 32, state=License.State.KEY_READ)
    client.force_login(user("operator", "heidi"))
    r = client.post(reverse("licensing:activate", args=["prod", "app1"]), {f"n{lic.pk}-license": LICENSE})
    assert r.status_code == 302
    [activated] = events(A.LICENSE_ACTIVATED)
    assert (activated.username, activated.cluster, activated.target) == ("heidi", "prod", "node app1 (10.0.0.11)")
    assert activated.details == "a newly pasted license; activation queued"


# -- no secret anywhere -----------------------------------------------------------------------------------

def test_no_secret_reaches_any_audit_row(client, pinned_cluster):
    _, node = pinned_cluster
    client.post("/login/", {"username": "nobody", "password": SSH_PASSWORD})
    client.force_login(user("admin", "ivan"))
    client.post(reverse("nodes:credential_create"), {"name": "root-pw", "kind": "password", "password": SSH_PASSWORD})
    client.post(reverse("nodes:credential_generate"), {"name": "gen"})
    client.post(reverse("nodes:cluster_edit", args=["prod"]), cluster_data(joget_admin_password=JOGET_PASSWORD))
    db = Node.objects.create(cluster=node.cluster, name="db", address="10.0.0.20", is_database=True)
    client.post(reverse("nodes:layer_edit", args=["prod", "shared-database"]),
                {"mode": "managed", "node": db.pk, "engine": "mariadb", "port": 3306, "name": "jwdb",
                 "user": "joget", "password": DB_PASSWORD})
    lic = License.objects.create(node=node, system_key="EE-" + "b" * 32, state=License.State.KEY_READ)
    client.post(reverse("licensing:activate", args=["prod", "app1"]), {f"n{lic.pk}-license": LICENSE})
    assert AuditEvent.objects.count() >= 7
    private_key = Credential.objects.get(name="gen").private_key
    secrets = [SSH_PASSWORD, DB_PASSWORD, JOGET_PASSWORD, LICENSE, private_key.splitlines()[1]]
    for row in AuditEvent.objects.values():
        text = " ".join(str(v) for v in row.values())
        for secret in secrets:
            assert secret not in text, f"a secret in audit row {row}"
    # The changed secret field is named, not shown.
    assert AuditEvent.objects.get(action=A.CLUSTER_CHANGED).details == "changed: joget_admin_password"


# -- append-only -------------------------------------------------------------------------------------------

def test_events_cannot_be_changed_or_deleted(client):
    client.post("/login/", {"username": "mallory", "password": "x"})
    event = AuditEvent.objects.get()
    event.details = "nothing happened"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(details="edited")
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()
    event.refresh_from_db()
    assert event.details == "wrong user name or password" and AuditEvent.objects.count() == 1
    # No permission to grant: only "view" exists.
    codenames = Permission.objects.filter(content_type__model="auditevent").values_list("codename", flat=True)
    assert set(codenames) == {"view_auditevent"}


# -- the page ------------------------------------------------------------------------------------------------

def make_events():
    AuditEvent.objects.create(username="alice", action=A.CLUSTER_CREATED, cluster="prod", target="cluster prod")
    AuditEvent.objects.create(time=timezone.now() - datetime.timedelta(days=10), username="alice",
                              action=A.DEPLOYMENT_STARTED, cluster="prod", target="deployment #1")
    AuditEvent.objects.create(username="bob", action=A.DEPLOYMENT_STARTED, cluster="test", target="deployment #2")
    AuditEvent.objects.create(username="bob", action=A.LOGIN_FAILED, target="login form",
                              details="wrong user name or password")


def test_audit_page_is_for_operators_and_admins(client):
    make_events()
    assert client.get("/audit/").status_code == 302  # login first
    client.force_login(user("viewer"))
    assert client.get("/audit/").status_code == 403
    client.force_login(user("operator"))
    assert client.get("/audit/").status_code == 200
    assert client.post("/audit/").status_code == 405
    client.force_login(user("admin"))
    page = client.get("/audit/").content.decode()
    assert "Deployment started" in page and "deployment #2" in page and "Audit trail" in page


def test_audit_page_filters(client):
    make_events()
    client.force_login(user("admin", "root"))  # itself an event: a login, target ""

    def rows(**query):
        page = client.get("/audit/", query).context["page"]
        return sorted(e.target for e in page)

    assert rows(action="deployment_started") == ["deployment #1", "deployment #2"]
    assert rows(user="ALICE") == ["cluster prod", "deployment #1"]
    assert rows(cluster="test") == ["deployment #2"]
    today = timezone.localdate()
    assert rows(since=str(today - datetime.timedelta(days=1))) == ["", "cluster prod", "deployment #2", "login form"]
    assert rows(until=str(today - datetime.timedelta(days=5))) == ["deployment #1"]
    assert rows(action="deployment_started", user="bob", cluster="test") == ["deployment #2"]
    r = client.get("/audit/", {"since": str(today), "until": str(today - datetime.timedelta(days=1))})
    assert "The &#x27;from&#x27; date is after the &#x27;to&#x27; date." in r.content.decode()
    r = client.get("/audit/", {"action": "no-such-action"})
    assert r.status_code == 200 and "Select a valid choice" in r.content.decode()


def test_audit_page_paginates_and_keeps_filters(client):
    AuditEvent.objects.bulk_create(AuditEvent(username="bulk", action=A.LOGIN_FAILED, target=f"t{i}")
                                   for i in range(120))
    client.force_login(user("admin"))
    r = client.get("/audit/", {"user": "bulk"})
    page = r.context["page"]
    assert page.paginator.count == 120 and len(page.object_list) == 50
    assert 'href="?user=bulk&amp;page=2"' in r.content.decode()
    r = client.get("/audit/", {"user": "bulk", "page": 3})
    assert len(r.context["page"].object_list) == 20
