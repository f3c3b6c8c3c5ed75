"""Rolling operations through the API, where they are refused: roles as on the cluster page (a viewer starts
nothing, an upgrade needs the admin), a wrong option a 400 naming its field with the same reason as the page and
`operate` (a WAR of another major version, not a WAR, unknown nodes, a batch of every app server, an unknown
member state), the cluster's state a 409 (another run going on names it). Nothing starts, nothing changes:
the real runs are in test_operations_rolling.py."""

import io
import zipfile

import pytest

from deployments.models import Deployment
from nodes.models import Artifact, AuditEvent, Cluster, LoadBalancer, Node, SharedDatabase

from .conftest import Answer, Api, ci_job

pytestmark = pytest.mark.django_db(transaction=True)

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnlyFakeKeyForTestsOnly0000"


def war_bytes(version: str) -> bytes:
    """A WAR as rolling.war_version reads it (the stand-in's properties file); nothing else is needed here."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as war:
        war.writestr("WEB-INF/standin.properties", f"version={version}\nbuild=test\n")
    return buf.getvalue()


def upload(api: Api, cluster: str, war: bytes | None, name: str = "jw.war", **fields) -> Answer:
    """The upgrade's one call: the WAR (and the batch) as curl -F sends them."""
    return api(f"/clusters/{cluster}/operations/upgrade/", "POST",
               multipart=(fields, {"war": (name, war)} if war is not None else {}))


@pytest.fixture
def shop(users):
    """A cluster that could roll (a balancer, two app servers, pinned host keys) running Joget 8.1.6; nothing
    connects to its nodes: every request here is refused before a run starts."""
    cluster = Cluster.objects.create(name="shop", joget_version="8.1.6")
    lb = Node.objects.create(cluster=cluster, name="lb", address="10.0.0.10", is_load_balancer=True,
                             host_key=HOST_KEY)
    for i in (1, 2):
        Node.objects.create(cluster=cluster, name=f"app{i}", address=f"10.0.0.1{i}", is_app_server=True,
                            jvm_route=f"node0{i}", host_key=HOST_KEY)
    db = Node.objects.create(cluster=cluster, name="db", address="10.0.0.20", is_database=True, host_key=HOST_KEY)
    LoadBalancer.objects.create(cluster=cluster, node=lb)
    SharedDatabase.objects.create(cluster=cluster, node=db)  # an upgrade backs it up first
    return cluster


def nothing_started(cluster, *already: Deployment) -> None:
    assert set(Deployment.objects.filter(cluster=cluster).values_list("pk", flat=True)) == {d.pk for d in already}
    assert not AuditEvent.objects.filter(action="deployment_started").exists()


def test_a_viewer_may_start_no_operation_and_an_operator_no_upgrade(api_as, shop):
    viewer, operator = api_as("viewer"), api_as("operator")
    for path, body in (("/clusters/shop/operations/restart/", {}), ("/clusters/shop/operations/rollback/", {}),
                       ("/clusters/shop/nodes/app1/member/", {"state": "disabled"})):
        refused = viewer(path, "POST", body=body)
        assert refused.status == 403, (path, refused.status)
        assert refused.json == {"detail": "This needs the operator role."}
    assert upload(viewer, "shop", war_bytes("8.1.7")).status == 403
    refused = upload(operator, "shop", war_bytes("8.1.7"))
    assert refused.status == 403 and refused.json == {"detail": "This needs the admin role."}
    # Reading is a viewer's: the kept member states, and what balancer-manager reports (here: it cannot be asked,
    # and the answer says why instead of failing).
    assert viewer("/clusters/shop/nodes/app1/").json["balancer_state"] == "enabled"
    members = viewer("/clusters/shop/members/")
    assert members.status == 200
    assert members.json["members"] == [
        {"node": "app1", "jvm_route": "node01", "state": "enabled", "reported": None},
        {"node": "app2", "jvm_route": "node02", "state": "enabled", "reported": None}]
    assert "balancer-manager on 10.0.0.10 answers only 127.0.0.1" in members.json["error"]
    assert viewer("/clusters/nope/members/").status == 404
    assert viewer("/clusters/shop/operations/restart/").status == 405
    nothing_started(shop)
    assert not Artifact.objects.filter(cluster=shop).exists()


def test_a_war_of_another_major_version_is_400_with_the_reason(api_as, shop, settings):
    admin = api_as("admin")
    current = Artifact(cluster=shop, kind=Artifact.Kind.JW_WAR, original_name="jw.war", size=3, sha256="ab" * 32)
    current.file.save("jw.war", io.BytesIO(b"old"), save=True)

    refused = upload(admin, "shop", war_bytes("9.0.1"), name="jw-9.war")
    assert refused.status == 400
    reason = ("jw-9.war is Joget 9.0.1, the cluster runs 8.1.6: a rolling upgrade must keep major version 8, since "
              "each node's license is for one major version (a new major needs new licenses: deploy it as a new "
              "cluster).")
    assert refused.json == {"detail": reason, "fields": {"war": [reason]}}

    not_a_war = upload(admin, "shop", b"<html>not a zip</html>", name="jw.war")
    assert not_a_war.status == 400
    assert not_a_war.json["fields"] == {"war": ["jw.war is not a WAR (not a readable zip file)."]}
    # Cut short, as an interrupted upload would be: refused the same way, not a server error.
    cut = upload(admin, "shop", war_bytes("8.1.7")[:-30])
    assert cut.status == 400 and cut.json["fields"] == not_a_war.json["fields"]
    damaged = upload(admin, "shop", war_bytes("8.1.7").replace(b"version=", b"v="))  # offsets no longer match
    assert damaged.status == 400 and damaged.json["fields"] == not_a_war.json["fields"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as war:
        war.writestr("WEB-INF/web.xml", "<web-app/>")
    no_version = upload(admin, "shop", buf.getvalue())
    assert no_version.status == 400 and "jw.war: no Joget version found inside" in no_version.json["detail"]
    missing = upload(admin, "shop", None, batch="1")
    assert missing.status == 400 and missing.json["fields"] == {"war": ["No file was submitted."]}
    bad_batch = upload(admin, "shop", war_bytes("8.1.7"), batch="zero")
    assert bad_batch.status == 400 and bad_batch.json["fields"] == {"batch": ["A valid integer is required."]}
    # Two app servers: a batch of two would take both out at once.
    all_at_once = upload(admin, "shop", war_bytes("8.1.7"), batch="2")
    assert all_at_once.status == 400 and list(all_at_once.json["fields"]) == ["batch"]
    assert "would restart all 2 app servers of shop at once" in all_at_once.json["detail"]
    settings.UPLOAD_MAX_BYTES = 100  # dropped while it streams in, and said so (not "no file")
    too_big = upload(admin, "shop", war_bytes("8.1.7") + b"\0" * 200)
    assert too_big.status == 400, too_big.json
    assert too_big.json["fields"]["war"][0].startswith("The file is larger than")

    nothing_started(shop)
    # The cluster's jw.war is still the one it had; no previous one was made.
    assert list(Artifact.objects.filter(cluster=shop).values_list("kind", "sha256")) == [("jw_war", "ab" * 32)]


def test_wrong_options_of_restart_and_member_state_are_400_on_their_field(api_as, shop):
    operator = api_as("operator")
    path = "/clusters/shop/operations/restart/"
    unknown = operator(path, "POST", body={"nodes": ["app1", "db", "nope"]})
    assert unknown.status == 400
    assert unknown.json["fields"] == {"nodes": ["Not app servers of shop: db, nope."]}
    assert operator(path, "POST", body={"batch": 0}).json["fields"] == {
        "batch": ["Ensure this value is greater than or equal to 1."]}
    assert operator(path, "POST", body={"nodes": "app1"}).json["fields"] == {
        "nodes": ['Expected a list of items but got type "str".']}
    assert operator(path, "POST", raw=b"{not json").status == 400

    member = "/clusters/shop/nodes/{}/member/"
    bad_state = operator(member.format("app1"), "POST", body={"state": "off"})
    assert bad_state.status == 400 and bad_state.json["fields"] == {"state": ['"off" is not a valid choice.']}
    not_a_member = operator(member.format("db"), "POST", body={"state": "disabled"})
    assert not_a_member.status == 400
    assert not_a_member.json["fields"] == {"node": ["db is not an app server: it is no member of the balancer."]}
    assert operator(member.format("nope"), "POST", body={"state": "disabled"}).status == 404
    assert operator("/clusters/nope/operations/restart/", "POST", body={}).status == 404
    nothing_started(shop)
    assert set(Node.objects.filter(cluster=shop).values_list("balancer_state", flat=True)) == {"enabled"}


def test_the_clusters_state_refuses_with_409_naming_the_run_going_on(api_as, shop):
    admin = api_as("admin")
    # No upgrade yet: nothing to roll back to.
    refused = admin("/clusters/shop/operations/rollback/", "POST", body={})
    assert refused.status == 409
    assert refused.json == {"detail": "Cluster shop has no previous jw.war to roll back to (no upgrade yet)."}

    running = Deployment.objects.create(cluster=shop, status=Deployment.Status.RUNNING)
    for answer in (admin("/clusters/shop/operations/restart/", "POST", body={"batch": 1}),
                   upload(admin, "shop", war_bytes("8.2.0")),
                   admin("/clusters/shop/nodes/app2/member/", "POST", body={"state": "drain"})):
        assert answer.status == 409, answer.json
        assert answer.json["running_deployment"] == running.pk
        assert f"Deployment #{running.pk} of shop is running" in answer.json["detail"]
    nothing_started(shop, running)
    # The refused upgrade left the artifacts as they were, and the refused member change the kept state.
    assert not Artifact.objects.filter(cluster=shop).exists()
    assert Node.objects.get(cluster=shop, name="app2").balancer_state == "enabled"


def test_the_ci_job_of_the_docs_fails_saying_why_when_the_upgrade_is_refused(api_as, shop, tmp_path):
    admin = api_as("admin", "release pipeline")
    war = tmp_path / "jw.war"
    war.write_bytes(war_bytes("9.0.1"))
    job = ci_job(admin.base, admin.token, "shop", war)
    out, err = job.communicate(timeout=60)
    assert job.returncode == 1, (out, err)
    assert err.startswith("refused (400): jw.war is Joget 9.0.1, the cluster runs 8.1.6: a rolling upgrade must keep "
                          "major version 8"), err
    assert out == ""

    running = Deployment.objects.create(cluster=shop, status=Deployment.Status.RUNNING)
    war.write_bytes(war_bytes("8.1.7"))
    job = ci_job(admin.base, admin.token, "shop", war)
    out, err = job.communicate(timeout=60)
    assert job.returncode == 1 and err.startswith(f"refused (409): Deployment #{running.pk} of shop is running"), err
    nothing_started(shop, running)
