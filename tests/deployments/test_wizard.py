"""The wizard's pages and memory (the browser walk-through lives in tests/browser)."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from deployments.models import WizardState
from nodes.models import Artifact, Cluster, Node

pytestmark = pytest.mark.django_db


@pytest.fixture
def cluster():
    c = Cluster.objects.create(name="prod")
    Node.objects.create(cluster=c, name="app1", address="10.0.0.11", is_app_server=True, jvm_route="node01")
    return c


@pytest.mark.parametrize("step", [k for k, _ in WizardState.STEPS])
def test_every_page_renders(admin_client, cluster, step):
    r = admin_client.get(reverse("deployments:wizard_step", args=["prod", step]))
    assert r.status_code == 200
    assert dict(WizardState.STEPS)[step] in r.content.decode()


def test_wizard_remembers_where_the_admin_is(admin_client, cluster):
    admin_client.get(reverse("deployments:wizard_step", args=["prod", "artifacts"]))
    r = admin_client.get(reverse("deployments:wizard_resume", args=["prod"]))
    assert r["Location"] == "/clusters/prod/wizard/artifacts/"
    assert WizardState.objects.get(cluster=cluster).step == "artifacts"


def test_unknown_step_is_404(admin_client, cluster):
    assert admin_client.get("/clusters/prod/wizard/nope/").status_code == 404


def test_start_page_creates_a_cluster(admin_client):
    r = admin_client.post(reverse("deployments:wizard_start"), {
        "action": "create", "c-name": "fresh", "c-joget_version": "8.1", "c-context_path": "/jw",
        "c-wflow_home": "/opt/joget/wflow", "c-datasource_profile": "default", "c-multicast": "on",
        "c-joget_admin_user": "admin"})
    assert r.status_code == 302 and r["Location"] == "/clusters/fresh/wizard/nodes/"
    assert Cluster.objects.filter(name="fresh").exists()


def test_upload_streams_to_storage_with_size_and_checksum(admin_client, cluster, tracemalloc_peak):
    import hashlib

    data = b"PK\x03\x04" + bytes(range(256)) * 40_000  # ~10 MB: spooled to disk, not memory
    upload = SimpleUploadedFile("jw.war", data)
    with tracemalloc_peak() as peak:
        r = admin_client.post(reverse("deployments:wizard_upload", args=["prod"]), {"kind": "jw_war", "file": upload})
    assert r.status_code == 302
    art = Artifact.objects.get(cluster=cluster, kind="jw_war")
    assert art.size == len(data) and art.sha256 == hashlib.sha256(data).hexdigest()
    assert art.file.read() == data
    page = admin_client.get(reverse("deployments:wizard_step", args=["prod", "artifacts"])).content.decode()
    assert art.sha256 in page and "9.8 MB" in page
    # The upload itself was built in memory by the test client; the view must not add another copy.
    assert peak.value < 3 * len(data)


def test_upload_rejects_an_unknown_kind(admin_client, cluster):
    r = admin_client.post(reverse("deployments:wizard_upload", args=["prod"]),
                          {"kind": "virus", "file": SimpleUploadedFile("x.bin", io.BytesIO(b"x").read())})
    assert r.status_code == 302 and not Artifact.objects.exists()


def test_an_upload_over_the_limit_is_refused_while_it_arrives(admin_client, cluster, settings, tmp_path):
    settings.UPLOAD_MAX_BYTES = 4 * 1024 * 1024
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)  # to see that nothing of it stays on disk
    big = SimpleUploadedFile("jw.war", b"x" * (5 * 1024 * 1024))
    r = admin_client.post(reverse("deployments:wizard_upload", args=["prod"]), {"kind": "jw_war", "file": big},
                          follow=True)
    assert "The file is larger than 4 MB, the most the console accepts" in r.content.decode()
    assert not Artifact.objects.exists() and list(tmp_path.iterdir()) == []
    ok = SimpleUploadedFile("jw.war", b"x" * (3 * 1024 * 1024))
    admin_client.post(reverse("deployments:wizard_upload", args=["prod"]), {"kind": "jw_war", "file": ok})
    assert Artifact.objects.get().size == 3 * 1024 * 1024
