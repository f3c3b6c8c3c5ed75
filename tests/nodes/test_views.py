import pytest
from django.urls import reverse

from nodes.models import Cluster, Credential, Node, SharedDatabase

pytestmark = pytest.mark.django_db


@pytest.fixture
def cluster():
    return Cluster.objects.create(name="prod")


def test_everything_needs_login(client, cluster):
    for url in [reverse("nodes:cluster_list"), cluster.get_absolute_url(), reverse("nodes:credential_list")]:
        r = client.get(url)
        assert r.status_code == 302 and r["Location"].startswith("/login/")


def test_login_page_renders(client):
    r = client.get("/login/")
    assert r.status_code == 200 and b"Log in" in r.content


def test_cluster_list_and_detail(admin_client, cluster):
    Node.objects.create(cluster=cluster, name="app1", address="10.0.0.11", is_app_server=True, jvm_route="node01")
    r = admin_client.get(reverse("nodes:cluster_list"))
    assert b"prod" in r.content and b"app1" in r.content
    r = admin_client.get(cluster.get_absolute_url())
    assert r.status_code == 200 and b"10.0.0.11" in r.content and b"not confirmed" in r.content


def test_create_node_with_bad_values_shows_errors_and_saves_nothing(admin_client, cluster):
    url = reverse("nodes:node_create", args=["prod"])
    r = admin_client.post(url, {"name": "app1", "address": "10.0.0.1;reboot", "roles": ["app_server"],
                                "ssh_port": 22, "ssh_user": "root", "jvm_route": "node 01", "http_port": 8080,
                                "install_path": "/opt/joget"}, HTTP_HX_REQUEST="true")
    assert r.status_code == 200
    assert b"Enter a host name" in r.content and b"jvmRoute is 1-32" in r.content
    assert not Node.objects.exists()


def test_inline_validation_never_saves(admin_client, cluster):
    url = reverse("nodes:node_create", args=["prod"]) + "?validate=1"
    data = {"name": "app1", "address": "10.0.0.11", "roles": ["app_server"], "ssh_port": 22, "ssh_user": "root",
            "jvm_route": "node01", "http_port": 8080, "install_path": "/opt/joget"}
    r = admin_client.post(url, data, HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and b"has-error" not in r.content
    assert not Node.objects.exists()


def test_create_edit_delete_node(admin_client, cluster):
    url = reverse("nodes:node_create", args=["prod"])
    data = {"name": "app1", "address": "10.0.0.11", "roles": ["app_server"], "ssh_port": 22, "ssh_user": "root",
            "jvm_route": "node01", "http_port": 8080, "install_path": "/opt/joget"}
    r = admin_client.post(url, data, HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and r["HX-Redirect"] == "/clusters/prod/nodes/app1/"
    node = Node.objects.get()
    assert node.roles == ["app_server"]
    # A second app server may not reuse the jvmRoute.
    r = admin_client.post(url, {**data, "name": "app2", "address": "10.0.0.12"}, HTTP_HX_REQUEST="true")
    assert b"uses this jvmRoute" in r.content and Node.objects.count() == 1
    r = admin_client.post(reverse("nodes:node_edit", args=["prod", "app1"]), {**data, "http_port": 8081})
    assert r.status_code == 302
    node.refresh_from_db()
    assert node.http_port == 8081
    assert admin_client.get(reverse("nodes:node_delete", args=["prod", "app1"])).status_code == 405
    admin_client.post(reverse("nodes:node_delete", args=["prod", "app1"]))
    assert not Node.objects.exists()


def test_database_layer_keeps_password_when_left_empty(admin_client, cluster):
    db = Node.objects.create(cluster=cluster, name="db", address="10.0.0.20", is_database=True)
    url = reverse("nodes:layer_edit", args=["prod", "shared-database"])
    data = {"mode": "managed", "node": db.pk, "engine": "mariadb", "port": 3306, "name": "jwdb", "user": "joget"}
    r = admin_client.post(url, data)
    assert b"Set the database user" in r.content and not SharedDatabase.objects.exists()
    admin_client.post(url, {**data, "password": "s3 cr'et"})
    assert SharedDatabase.objects.get().password == "s3 cr'et"
    admin_client.post(url, {**data, "port": 3307})
    sd = SharedDatabase.objects.get()
    assert sd.port == 3307 and sd.password == "s3 cr'et"
    page = admin_client.get(url).content.decode()
    assert "s3 cr" not in page


def test_unknown_layer_is_404(admin_client, cluster):
    assert admin_client.get(reverse("nodes:layer_edit", args=["prod", "nope"])).status_code == 404


def test_generate_key_pair_shows_public_key_only(admin_client):
    admin_client.post(reverse("nodes:credential_generate"), {"name": "deploy"})
    cred = Credential.objects.get(name="deploy")
    page = admin_client.get(reverse("nodes:credential_list")).content.decode()
    assert cred.public_key in page and "PRIVATE KEY" not in page


def test_create_cluster(admin_client):
    r = admin_client.post(reverse("nodes:cluster_create"), {
        "name": "new-one", "joget_version": "8.1", "context_path": "/jw", "wflow_home": "/opt/joget/wflow",
        "datasource_profile": "default", "multicast": "on", "joget_admin_user": "admin"})
    assert r.status_code == 302
    assert Cluster.objects.filter(name="new-one").exists()
    r = admin_client.post(reverse("nodes:cluster_create"), {
        "name": "Bad Name", "joget_version": "8.1", "context_path": "jw", "wflow_home": "relative",
        "datasource_profile": "default", "joget_admin_user": "admin"})
    assert r.status_code == 200 and Cluster.objects.count() == 1


def test_import_page(admin_client, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    doc = b'{"cluster": "imp", "nodes": [{"name": "a", "address": "10.0.0.1", "roles": ["database"]}]}'
    r = admin_client.post(reverse("nodes:cluster_import"), {"file": SimpleUploadedFile("inv.json", doc)})
    assert r.status_code == 302 and Cluster.objects.get(name="imp").nodes.count() == 1
    r = admin_client.post(reverse("nodes:cluster_import"), {"file": SimpleUploadedFile("inv.json", b"[1,2")})
    assert b"Not a JSON document" in r.content


def test_cluster_form_goes_back_only_to_a_page_of_this_site(admin_client, cluster):
    url = reverse("nodes:cluster_edit", args=["prod"])
    data = {"name": "prod", "joget_version": "8.1", "context_path": "/jw", "wflow_home": "/opt/joget/wflow",
            "datasource_profile": "default", "joget_admin_user": "admin"}
    r = admin_client.post(url, {**data, "next": "/clusters/prod/licenses/"})
    assert r.status_code == 302 and r["Location"] == "/clusters/prod/licenses/"
    r = admin_client.post(url, {**data, "next": "https://evil.example/"})
    assert r.status_code == 302 and r["Location"] == "/clusters/prod/"


def test_import_with_replace_says_in_the_audit_trail_what_it_dropped(admin_client, cluster):
    import io

    from nodes.models import AuditEvent

    cluster.joget_admin_password = "secret"
    cluster.save()
    doc = (b'{"cluster": "prod", "nodes": [{"name": "app1", "address": "10.0.0.11", "roles": ["app_server"], '
           b'"jvm_route": "node01"}]}')
    upload = io.BytesIO(doc)
    upload.name = "inventory.json"
    r = admin_client.post(reverse("nodes:cluster_import"), {"file": upload, "replace": "on"})
    assert r.status_code == 302
    event = AuditEvent.objects.get(action=AuditEvent.Action.INVENTORY_IMPORTED)
    assert event.details == "1 nodes; replaced the existing cluster, dropping the stored Joget admin login"
