import copy
import json
import subprocess

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from nodes.inventory import InventoryError, dump_inventory, load_inventory
from nodes.models import Artifact, BalancerState, Cluster, Node, SharedDatabase

pytestmark = pytest.mark.django_db

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


@pytest.fixture
def identity(tmp_path):
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


@pytest.fixture
def doc(tmp_path, identity):
    war = tmp_path / "jw.war"
    war.write_bytes(b"PK\x03\x04 not really a war")
    return {
        "cluster": "prod",
        "joget_version": "8.1",
        "wflow_home": "/opt/joget/wflow",
        "identity_file": str(identity),
        "nodes": [
            {"name": "lb", "address": "10.1.0.10", "roles": ["load_balancer"], "host_key": HOST_KEY},
            {"name": "app1", "address": "10.1.0.11", "roles": ["app_server", "file_server"], "jvm_route": "node01",
             "catalina_home": "/usr/share/tomcat10"},
            {"name": "app2", "address": "10.1.0.12", "roles": ["app_server"], "jvm_route": "node02"},
            {"name": "db", "address": "10.1.0.20", "roles": ["database"], "ssh_port": 2222},
        ],
        "shared_directory": {"mode": "managed", "node": "app1", "export_path": "/export/wflow",
                             "client_subnet": "10.1.0.0/24"},
        "shared_database": {"mode": "managed", "node": "db", "engine": "mariadb", "name": "jwdb", "user": "joget",
                            "password": "it's a $(secret)"},
        "load_balancer": {"mode": "managed", "node": "lb", "site_name": "jwsite"},
        "artifacts": [{"kind": "jw_war", "path": str(war)}],
    }


def test_import_creates_everything(doc):
    cluster = load_inventory(doc)
    assert cluster.nodes.count() == 4
    app1 = cluster.nodes.get(name="app1")
    assert app1.roles == ["app_server", "file_server"] and app1.jvm_route == "node01"
    assert cluster.nodes.get(name="lb").host_key == HOST_KEY
    assert cluster.nodes.get(name="lb").host_key_confirmed_at is not None
    assert cluster.nodes.get(name="db").ssh_port == 2222
    assert SharedDatabase.objects.get(cluster=cluster).password == "it's a $(secret)"
    assert cluster.credential.private_key.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    art = Artifact.objects.get(cluster=cluster, kind="jw_war")
    assert art.size == len(b"PK\x03\x04 not really a war") and len(art.sha256) == 64
    assert art.file.read() == b"PK\x03\x04 not really a war"


def test_export_round_trips(doc):
    load_inventory(doc)
    Node.objects.filter(cluster__name="prod", name="app1").update(balancer_state=BalancerState.DISABLED)
    out = dump_inventory(Cluster.objects.get(name="prod"), include_secrets=True)
    again = copy.deepcopy(out)
    again["cluster"] = "prod2"
    again["identity_file"] = doc["identity_file"]
    load_inventory(again)
    out2 = dump_inventory(Cluster.objects.get(name="prod2"), include_secrets=True)
    out.pop("cluster"), out2.pop("cluster")
    out.pop("artifacts"), out2.pop("artifacts")
    assert out == out2
    assert [n.get("balancer_state") for n in out2["nodes"] if n["name"] == "app1"] == ["disabled"]
    assert "password" not in dump_inventory(Cluster.objects.get(name="prod"))["shared_database"]


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda d: d["nodes"][1].update(address="10.0.0.1; rm -rf /"), "nodes[1] (app1): address"),
        (lambda d: d["nodes"][2].update(jvm_route="node01"), "jvm_route 'node01' is used twice"),
        (lambda d: d["nodes"][2].pop("jvm_route"), "app server needs a jvmRoute"),
        (lambda d: d["nodes"][1].update(balancer_state="off"), "nodes[1] (app1): balancer_state"),
        (lambda d: d["nodes"][0].update(roles=["web"]), "Unknown role"),
        (lambda d: d["nodes"][0].update(colour="red"), "unknown key(s) colour"),
        (lambda d: d["shared_database"].update(node="nope"), "no node named 'nope'"),
        (lambda d: d["shared_database"].update(name="jw db"), "shared_database: name"),
        (lambda d: d.update(wflow_home="/opt/../etc"), "cluster: wflow_home"),
        (lambda d: d.update(wflow_home="/usr"), "/usr is a system directory"),
        (lambda d: d["shared_directory"].update(export_path="/"), "shared_directory: export_path: / is a system"),
        (lambda d: d["nodes"][1].update(catalina_base="/etc"), "catalina_base: /etc is a system directory"),
        (lambda d: d["nodes"][0].update(host_key="not a key"), "host_key"),
        (lambda d: d["artifacts"].append({"kind": "jw_war", "path": "/nonexistent/jw.war"}), "cannot read"),
    ],
)
def test_bad_document_changes_nothing(doc, mutate, message, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    mutate(doc)
    with pytest.raises(InventoryError) as exc:
        load_inventory(doc)
    assert message in " ".join(exc.value.messages)
    assert not Cluster.objects.exists() and not Node.objects.exists() and not Artifact.objects.exists()
    # Nor a file in storage: the last case copies the first artifact before the second one fails.
    assert [p for p in (tmp_path / "media").rglob("*") if p.is_file()] == []


def test_existing_cluster_needs_replace(doc):
    load_inventory(doc)
    with pytest.raises(InventoryError, match="exists already"):
        load_inventory(doc)
    doc["nodes"].pop()
    doc["shared_database"]["node"] = "app2"
    load_inventory(doc, replace=True)
    assert Cluster.objects.get(name="prod").nodes.count() == 3


def test_management_commands(doc, tmp_path, capsys):
    path = tmp_path / "inv.json"
    path.write_text(json.dumps(doc))
    call_command("import_inventory", str(path))
    assert "Imported cluster prod with 4 nodes" in capsys.readouterr().out
    call_command("export_inventory", "prod")
    exported = json.loads(capsys.readouterr().out)
    assert [n["name"] for n in exported["nodes"]] == ["app1", "app2", "db", "lb"]
    with pytest.raises(CommandError, match="No cluster named 'nope'"):
        call_command("export_inventory", "nope")
    path.write_text("{not json")
    with pytest.raises(CommandError, match="not a JSON document"):
        call_command("import_inventory", str(path))


# -- files on the console machine ------------------------------------------------------------------------

@pytest.fixture
def console_secret(tmp_path):
    secret = tmp_path / "console.env"
    secret.write_text("SECRET_KEY=the-console-s-own-secret\n")
    return secret


@pytest.mark.parametrize("url,extra", [("nodes:cluster_import", {}),
                                       ("deployments:wizard_start", {"action": "import"})])
@pytest.mark.parametrize("names", ["artifact", "identity_file"])
def test_web_import_refuses_files_on_the_console_machine(admin_client, doc, console_secret, url, extra, names):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    if names == "artifact":
        doc.pop("identity_file")
        doc["artifacts"] = [{"kind": "tomcat_archive", "path": str(console_secret)}]
    else:
        doc.pop("artifacts")
        doc["identity_file"] = str(console_secret)
    r = admin_client.post(reverse(url), {**extra, "file": SimpleUploadedFile("inv.json", json.dumps(doc).encode())})
    page = r.content.decode()
    assert r.status_code == 200
    assert "cannot name files on the console machine" in page and "upload the SSH key" in page
    assert "the-console-s-own-secret" not in page
    assert not Cluster.objects.exists() and not Artifact.objects.exists()


def test_web_import_without_files_still_works(admin_client, doc):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    doc.pop("identity_file"), doc.pop("artifacts")
    r = admin_client.post(reverse("nodes:cluster_import"),
                          {"file": SimpleUploadedFile("inv.json", json.dumps(doc).encode())})
    assert r.status_code == 302 and Cluster.objects.get(name="prod").nodes.count() == 4


@pytest.mark.parametrize("url,extra", [("nodes:cluster_import", {}),
                                       ("deployments:wizard_start", {"action": "import"})])
def test_web_import_takes_the_ssh_key_as_an_upload(admin_client, doc, identity, url, extra):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    doc.pop("identity_file"), doc.pop("artifacts")
    files = {"file": SimpleUploadedFile("inv.json", json.dumps(doc).encode()),
             "identity": SimpleUploadedFile("id_ed25519", b"not a key")}
    r = admin_client.post(reverse(url), {**extra, **files})
    assert r.status_code == 200 and not Cluster.objects.exists()
    files = {"file": SimpleUploadedFile("inv.json", json.dumps(doc).encode()),
             "identity": SimpleUploadedFile("id_ed25519", identity.read_bytes())}
    r = admin_client.post(reverse(url), {**extra, **files})
    assert r.status_code == 302
    credential = Cluster.objects.get(name="prod").credential
    assert credential.private_key == identity.read_text()
    assert credential.public_key == " ".join(identity.with_suffix(".pub").read_text().split()[:2])


def test_a_bounded_import_reads_only_below_its_root(doc, tmp_path, identity, console_secret):
    root = tmp_path / "state"
    root.mkdir()
    (root / "jw.war").write_bytes(b"PK war")
    (root / "id_ed25519").write_text(identity.read_text())
    doc["artifacts"] = [{"kind": "jw_war", "path": str(root / "jw.war")}]
    doc["identity_file"] = str(root / "id_ed25519")
    load_inventory(doc, local_root=root)
    assert Artifact.objects.get(kind="jw_war").file.read() == b"PK war"

    # A path outside it, or a link inside it that leads outside, is refused and nothing changes.
    (root / "link.war").symlink_to(console_secret)
    for path in (str(console_secret), str(root / "link.war"), f"{root}/../console.env"):
        bad = copy.deepcopy(doc)
        bad["cluster"] = "other"
        bad["artifacts"] = [{"kind": "tomcat_archive", "path": path}]
        with pytest.raises(InventoryError, match="outside"):
            load_inventory(bad, local_root=root)
        assert not Cluster.objects.filter(name="other").exists()


@pytest.mark.parametrize("url,extra", [("nodes:cluster_import", {}),
                                       ("deployments:wizard_start", {"action": "import"})])
def test_web_import_refuses_a_document_over_one_megabyte(admin_client, doc, url, extra):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    doc.pop("identity_file"), doc.pop("artifacts")
    doc["nodes"][0]["padding"] = "x" * (1024 * 1024)  # would be refused anyway, but only after parsing it
    r = admin_client.post(reverse(url), {**extra, "file": SimpleUploadedFile("inv.json", json.dumps(doc).encode())})
    assert "The inventory document is larger than 1 MB, the most the console accepts" in r.content.decode()
    assert not Cluster.objects.exists()
