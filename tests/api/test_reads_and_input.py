"""Reads (clusters, nodes, health, system keys as JSON and CSV) with no secret in any answer; hostile input
refused with the node form's own errors; the OpenAPI schema valid by drf-spectacular's validation; the docs
page served by the console, with no asset from elsewhere."""

import csv
import hashlib
import io
import re

import pytest
from django.core.management import call_command
from django.forms.models import model_to_dict

from licensing.models import License
from nodes.forms import NodeForm
from nodes.models import Artifact, AuditEvent, Cluster, Credential, Node, SharedDatabase

from .conftest import browser_session, call

pytestmark = pytest.mark.django_db(transaction=True)

DB_PASSWORD = "db-Secret-7f3a!"  # noqa: S105 - planted, to be looked for in every answer
LICENSE_TEXT = "LICENSE-TEXT-4c1d-never-shown"
SSH_PASSWORD = "ssh-Secret-9b2e"  # noqa: S105


@pytest.fixture
def prod(users):
    cred = Credential.objects.create(name="ops", kind="password", password=SSH_PASSWORD)
    cluster = Cluster.objects.create(name="prod", credential=cred, joget_admin_password="joget-Secret-1")
    app1 = Node.objects.create(cluster=cluster, name="app1", address="10.0.0.11", is_app_server=True,
                               jvm_route="node01")
    app2 = Node.objects.create(cluster=cluster, name="app2", address="10.0.0.12", is_app_server=True,
                               jvm_route="node02")
    db = Node.objects.create(cluster=cluster, name="db", address="10.0.0.20", is_database=True)
    SharedDatabase.objects.create(cluster=cluster, node=db, password=DB_PASSWORD)
    License.objects.create(node=app1, system_key="EE-0123456789abcdef0123456789abcdef", state="activated",
                           license_text=LICENSE_TEXT, key_profile="default")
    # A profile read from a node (which its service user can write) that a spreadsheet would run as a formula.
    License.objects.create(node=app2, system_key="EE-fedcba9876543210fedcba9876543210", state="key_read",
                           key_profile="=HYPERLINK(\"http://x\")")
    return cluster


def assert_no_secret(answer):
    for secret in (DB_PASSWORD, LICENSE_TEXT, SSH_PASSWORD, "joget-Secret-1"):
        assert secret not in answer.text


def test_cluster_detail_has_layers_and_health_and_no_secret(api_as, prod):
    api = api_as("viewer")
    detail = api("/clusters/prod/")
    assert detail.status == 200
    body = detail.json
    assert body["name"] == "prod" and body["nodes"] == 3
    assert body["layers"]["shared_database"] == {"mode": "managed", "node": "db", "host": "", "engine": "mariadb",
                                                 "port": 3306, "name": "jwdb", "user": "joget"}
    assert body["layers"]["shared_directory"] is None and body["layers"]["load_balancer"] is None
    assert set(body["health"]) == {"shared_directory", "shared_database", "app_servers", "load_balancer"}
    assert body["health"]["app_servers"]["state"] == "neutral"  # no check cycle has run yet
    assert body["latest_deployment"] is None and body["checklist"]["state"] == "none"
    health = api("/clusters/prod/health/").json
    assert health["overall"] == "neutral" and [n["name"] for n in health["nodes"]] == ["app1", "app2", "db"]
    nodes = api("/clusters/prod/nodes/")
    assert [n["name"] for n in nodes.json] == ["app1", "app2", "db"]
    assert nodes.json[0]["roles"] == ["app_server"] and nodes.json[0]["credential"] is None
    for answer in (detail, nodes, api("/clusters/prod/nodes/app1/"), api("/clusters/")):
        assert_no_secret(answer)
    assert api("/clusters/nope/").status == 404 and api("/clusters/nope/").json == {"detail": "No Cluster matches "
                                                                                              "the given query."}


def test_system_keys_as_json_and_csv_without_license_text(api_as, prod):
    api = api_as("viewer")
    rows = api("/clusters/prod/system-keys/")
    assert rows.status == 200
    assert [(r["node"], r["system_key"], r["state"]) for r in rows.json] == [
        ("app1", "EE-0123456789abcdef0123456789abcdef", "activated"),
        ("app2", "EE-fedcba9876543210fedcba9876543210", "key read")]
    sheet = api("/clusters/prod/system-keys/?format=csv")
    assert sheet.status == 200 and sheet.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(sheet.text)))
    assert [r["system_key"] for r in table] == [r["system_key"] for r in rows.json]
    assert table[1]["profile"].startswith("'=")  # neutralised, as in the page's export
    assert_no_secret(rows)
    assert_no_secret(sheet)


def _form_errors(node: Node, changes: dict) -> dict:
    """What the console's node form says about the same change (to the node as stored: a form that failed
    leaves its values on the instance)."""
    node = Node.objects.get(pk=node.pk)
    data = {k: v for k, v in model_to_dict(node, fields=NodeForm.Meta.fields).items() if v is not None}
    data["roles"] = node.roles
    data.update(changes)
    form = NodeForm(data, instance=node, cluster=node.cluster)
    assert not form.is_valid()
    return {k: list(v) for k, v in form.errors.items()}


HOSTILE = [
    {"address": "10.0.0.11; rm -rf /"},
    {"address": "$(reboot)"},
    {"jvm_route": "node01\nInclude /etc/shadow"},
    {"install_path": "/etc"},
    {"install_path": "relative/path"},
    {"ssh_user": "root\"; touch /tmp/x #"},
    {"name": "../../etc"},
    {"ssh_port": 70000},
    {"roles": ["app_server", "root_shell"]},
    {"jvm_route": "node02"},  # app2's: unique in the cluster
    {"credential": "no-such-credential"},
]


def test_hostile_input_is_refused_with_the_forms_errors(api_as, prod):
    api = api_as("admin")
    app1 = Node.objects.get(name="app1")
    for change in HOSTILE:
        answer = api("/clusters/prod/nodes/app1/", "PATCH", body=change)
        assert answer.status == 400, change
        expected = _form_errors(app1, change)
        assert answer.json["fields"] == expected, change
        assert answer.json["detail"]
    assert model_to_dict(Node.objects.get(name="app1")) == model_to_dict(app1)  # nothing saved
    not_an_object = api("/clusters/prod/nodes/app1/", "PATCH", body=["address", "10.0.0.99"])
    assert not_an_object.status == 400 and "JSON object" in not_an_object.json["detail"]
    # A new node: the same form, the same messages; then a valid one is created and audited.
    bad = api("/clusters/prod/nodes/", "POST", body={"name": "app3", "address": "10.0.0.13`id`",
                                                    "roles": ["app_server"]})
    assert bad.status == 400 and set(bad.json["fields"]) == {"address", "jvm_route"}
    good = api("/clusters/prod/nodes/", "POST", body={"name": "app3", "address": "10.0.0.13", "jvm_route": "node03",
                                                     "roles": ["app_server"], "credential": "ops"})
    assert good.status == 201 and good.json["credential"] == "ops" and good.json["roles"] == ["app_server"]
    assert Node.objects.get(name="app3").credential.name == "ops"
    event = AuditEvent.objects.get(action="node_created")
    assert event.username == "admin" and event.details == "via API token 'admin tests'"


def test_bad_requests_in_one_format(api_as, prod):
    api = api_as("operator")
    unknown = api("/clusters/prod/deployments/", "POST", body={"steps": ["no.such.step"]})
    assert unknown.status == 400 and "unknown step(s): no.such.step" in unknown.json["fields"]["steps"][0]
    wrong_type = api("/clusters/prod/deployments/", "POST", body={"dry_run": "perhaps", "steps": "all"})
    assert wrong_type.status == 400 and set(wrong_type.json["fields"]) == {"dry_run", "steps"}
    not_json = api("/clusters/prod/deployments/", "POST", raw=b"{dry_run: yes")
    assert not_json.status == 400 and "JSON parse error" in not_json.json["detail"]
    # Unpinned host keys: the engine's refusal, as the page shows it.
    refused = api("/clusters/prod/deployments/", "POST", body={"dry_run": True})
    assert refused.status == 409 and "Host keys not confirmed" in refused.json["detail"]
    assert api("/deployments/999999/").status == 404
    assert api("/clusters/prod/", "DELETE").status == 405
    assert set(api("/clusters/prod/", "DELETE").json) == {"detail"}


def test_the_schema_validates_and_the_docs_page_is_served_here(live_server, api_as, prod, tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    schema = api_as("viewer")("/schema/", headers={"Accept": "application/vnd.oai.openapi+json"})
    assert schema.status == 200 and schema.json["openapi"].startswith("3.")
    paths = schema.json["paths"]
    assert {"/api/v1/clusters/{name}/deployments/", "/api/v1/deployments/{id}/log/",
            "/api/v1/clusters/{name}/system-keys/", "/api/v1/clusters/{name}/backups/",
            "/api/v1/clusters/{name}/backups/{backup_id}/restore/", "/api/v1/clusters/{name}/drift/"} <= set(paths)
    assert schema.json["components"]["securitySchemes"]["bearerToken"]["scheme"] == "bearer"
    assert call(f"{live_server.url}/api/v1/schema/").status == 401

    opener, _ = browser_session(live_server.url, "viewer")
    page = call(f"{live_server.url}/api/v1/docs/", opener=opener)
    assert page.status == 200 and "swagger-ui" in page.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and not [a for a in assets if a.startswith(("http:", "https:", "//"))]
    for asset in assets:  # the Swagger UI files and the init script, all from the console
        assert call(f"{live_server.url}{asset.replace('&amp;', '&')}", opener=opener).status == 200, asset


def multipart(fields: dict, files: dict) -> tuple[bytes, str]:
    boundary = "----jcc-test-boundary-5f1c"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    for name, (filename, content) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_an_admin_uploads_a_war_as_the_wizard_does(api_as, prod, settings):
    war = b"PK\x03\x04 a stand-in jw.war " * 100
    body, ctype = multipart({"kind": "jw_war"}, {"file": ("jw.war", war)})
    refused = api_as("operator")("/clusters/prod/artifacts/", "POST", raw=body, headers={"Content-Type": ctype})
    assert refused.status == 403
    api = api_as("admin", "ci upload")
    stored = api("/clusters/prod/artifacts/", "POST", raw=body, headers={"Content-Type": ctype})
    assert stored.status == 201, stored.text
    assert stored.json["sha256"] == hashlib.sha256(war).hexdigest() and stored.json["size"] == len(war)
    assert [(a["kind"], a["original_name"]) for a in api("/clusters/prod/artifacts/").json] == [("jw_war", "jw.war")]
    assert Artifact.objects.get(cluster=prod, kind="jw_war").file.read() == war
    event = AuditEvent.objects.get(action="artifact_uploaded")
    assert hashlib.sha256(war).hexdigest() in event.details and "API token 'ci upload'" in event.details

    settings.UPLOAD_MAX_BYTES = 1000
    too_big = api("/clusters/prod/artifacts/", "POST", raw=body, headers={"Content-Type": ctype})
    assert too_big.status == 400 and "larger than" in too_big.json["fields"]["file"][0]
    wrong_kind, ctype = multipart({"kind": "rootkit"}, {"file": ("x.war", b"x")})
    answer = api("/clusters/prod/artifacts/", "POST", raw=wrong_kind, headers={"Content-Type": ctype})
    assert answer.status == 400 and "kind" in answer.json["fields"]
    assert Artifact.objects.get(cluster=prod, kind="jw_war").sha256 == hashlib.sha256(war).hexdigest()
