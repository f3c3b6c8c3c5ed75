"""Deployments through the API, on the light testbed with a real Celery worker: a dry run followed to its end,
the log read with a cursor (each line once), one deployment at a time (409), the checklist."""

import time

import pytest

from deployments.models import CheckRun, LogLine
from nodes.models import AuditEvent

pytestmark = [pytest.mark.light, pytest.mark.django_db(transaction=True)]


def follow(api, dep_id: int, timeout: float = 90.0) -> dict:
    """Poll the deployment as a pipeline would, until it is no longer running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = api(f"/deployments/{dep_id}/")
        assert answer.status == 200
        if answer.json["status"] != "running":
            return answer.json
        time.sleep(0.3)
    pytest.fail(f"deployment {dep_id} still running after {timeout} s")


def test_a_dry_run_started_and_followed_to_its_end(api_as, testbed_cluster, light_testbed):
    api = api_as("operator", "pipeline")
    answer = api(f"/clusters/{testbed_cluster.name}/deployments/", "POST",
                 body={"dry_run": True, "steps": ["test.marker"]})
    assert answer.status == 201, answer.json
    dep_id = answer.json["id"]
    assert answer.json["dry_run"] is True and answer.json["steps"] == ["test.marker"]
    assert answer.json["started_by"] == "operator"

    done = follow(api, dep_id)
    assert done["status"] == "succeeded"
    assert done["recap"] == {"changed": 2, "ok": 0, "failed": 0, "skipped": 0}
    assert {(r["step"], r["node"], r["status"]) for r in done["runs"]} == {
        ("test.marker", "app1", "changed"), ("test.marker", "app2", "changed")}
    assert all(r["changes"] for r in done["runs"])  # what would change, per node
    # A dry run changes nothing on the nodes.
    for host in ("app1", "app2"):
        assert light_testbed.host_exec(host, "test -e /run/jcc-marker", check=False).returncode != 0
    # Listed, and audited with the token's name.
    listed = api(f"/clusters/{testbed_cluster.name}/deployments/").json
    assert listed[0]["id"] == dep_id and listed[0]["status"] == "succeeded"
    event = AuditEvent.objects.get(action="deployment_started")
    assert event.username == "operator" and "API token 'pipeline'" in event.details


def test_the_log_cursor_gives_each_line_once_and_a_second_start_is_409(api_as, testbed_cluster, light_testbed):
    api = api_as("operator")
    for host in ("app1", "app2"):
        light_testbed.host_exec(host, "echo 25 > /tmp/jcc-slow-ticks")
    answer = api(f"/clusters/{testbed_cluster.name}/deployments/", "POST", body={"steps": ["test.slow"]})
    assert answer.status == 201
    dep_id = answer.json["id"]

    second = api(f"/clusters/{testbed_cluster.name}/deployments/", "POST", body={"dry_run": True})
    assert second.status == 409
    assert second.json["running_deployment"] == dep_id and "is running" in second.json["detail"]

    seen, after, polls = [], 0, 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        page = api(f"/deployments/{dep_id}/log/?after={after}")
        assert page.status == 200
        polls += 1
        seen += page.json["lines"]
        after = page.json["next_after"]
        if page.json["finished"]:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the log never said finished")
    assert polls > 2, "the deployment ended before the log was read live"
    ids = [line["id"] for line in seen]
    assert len(ids) == len(set(ids)) and ids == sorted(ids)
    assert ids == list(LogLine.objects.filter(run__deployment_id=dep_id).order_by("id").values_list("id", flat=True))
    for node in ("app1", "app2"):
        ticks = [line["text"] for line in seen if line["node"] == node and line["text"].startswith("tick")]
        assert ticks == [f"tick {i}" for i in range(1, 26)], node
    # Past the end: nothing more, still finished.
    tail = api(f"/deployments/{dep_id}/log/?after={after}").json
    assert tail["lines"] == [] and tail["finished"] and tail["status"] == "succeeded"


def test_the_checklist_runs_and_reads_through_the_api(api_as, testbed_cluster):
    api = api_as("operator")
    answer = api(f"/clusters/{testbed_cluster.name}/checklist/", "POST")
    assert answer.status == 201
    run_id = answer.json["id"]
    deadline = time.monotonic() + 120
    while (run := api(f"/checklist-runs/{run_id}/").json)["status"] == "running":
        assert time.monotonic() < deadline, "the checklist did not finish"
        time.sleep(0.5)
    # sshd only: what the guide needs is not there yet, and the deployment would set it up ("planned").
    stored = CheckRun.objects.get(pk=run_id)
    assert run["status"] == stored.status and run["finished"]
    assert sorted((r["item"], r["node"] or "", r["status"]) for r in run["results"]) == sorted(
        (r.item, r.node.name if r.node_id else "", r.status) for r in stored.results.select_related("node"))
    assert {r["item"] for r in run["results"]} >= {"shared_directory", "database", "app_http"}
    assert "planned" in {r["status"] for r in run["results"]}
    assert all(r["status"] in ("pass", "fail", "planned") and r["found"] for r in run["results"])
    listed = api(f"/clusters/{testbed_cluster.name}/checklist/").json
    assert listed[0]["id"] == run_id
    assert api(f"/clusters/{testbed_cluster.name}/").json["checklist"]["id"] == run_id
