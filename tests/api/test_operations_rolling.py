"""Rolling operations through the API on a serving cluster (full testbed: lb, app1, app2, db), as a release
pipeline runs them: the CI job of docs/api.md uploads a jw.war and starts the rolling upgrade in one call,
follows the run until it has ended and reads its result; a second start meanwhile is a 409 naming it; then an
app server out of the balancer and back, the rollback, and a restart of one node. All under steady load through
the balancer: no failed request, no lost session."""

import hashlib
import re
import time

import pytest

from deployments import backups
from deployments.models import Backup, Deployment, LogLine
from nodes.inventory import load_inventory
from nodes.models import AuditEvent, Node
from nodes.testbed.standin import build_war
from tests.conftest import wait_for
from tests.deployments.test_rolling import build_of_war, manager_states, node_builds
from tests.deployments.test_steps_joget import deploy, explain
from tests.load import SteadyLoad

from .conftest import Api, ci_job

pytestmark = [pytest.mark.full, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def ops_testbed(serving_testbed):
    return serving_testbed  # two app servers: the smallest cluster that can roll


@pytest.fixture
def serving(ops_testbed, celery_worker_process):
    """The testbed's cluster, deployed (the set-up: its first deployment starts every node)."""
    cluster = load_inventory(dict(ops_testbed), replace=True)
    dep = deploy(cluster, steps=None, timeout=900)
    assert dep.status == "succeeded", explain(dep)
    return cluster


def follow(api: Api, dep_id: int, timeout: float = 300.0) -> tuple[dict, list[dict]]:
    """As the CI job in docs/api.md: read the log with the cursor until it says finished, then the result.
    (the deployment's detail, every log line)."""
    lines, after = [], 0
    t0 = time.monotonic()
    deadline = t0 + timeout
    while True:
        page = api(f"/deployments/{dep_id}/log/?after={after}")
        assert page.status == 200, page.json
        lines += page.json["lines"]
        after = page.json["next_after"]
        if page.json["finished"]:
            break
        assert time.monotonic() < deadline, f"deployment {dep_id} still running after {timeout} s"
        if not page.json["more"]:
            time.sleep(0.5)
    detail = api(f"/deployments/{dep_id}/")
    assert detail.status == 200
    print(f"{detail.json['operation']} #{dep_id}: {detail.json['status']}, followed for {time.monotonic() - t0:.1f} s")
    return detail.json, lines


def test_a_pipeline_upgrades_node_by_node_takes_a_member_out_rolls_back_and_restarts(
        api_as, serving, ops_testbed, tmp_path):
    tb, name = ops_testbed, serving.name
    pipeline, operator = api_as("admin", "release pipeline"), api_as("operator", "on call")
    old_build = set(node_builds(tb).values())
    war = build_war(tmp_path / "jw.war", "8.1.1", start_delay=2)
    new_build = build_of_war(war)
    assert len(old_build) == 1 and new_build not in old_build

    with SteadyLoad(tb.address("lb"), sessions=4, rate=3.0) as load:
        load.wait_requests(12)
        # The CI job of docs/api.md, as written there: upload and roll in one call, poll, exit 0 on success.
        job = ci_job(pipeline.base, pipeline.token, name, war)
        running = wait_for(lambda: Deployment.objects.filter(cluster=serving, status="running").first(),
                           timeout=60, message="the upgrade to start")
        dep_id = running.pk
        started = operator(f"/deployments/{dep_id}/").json
        assert started["operation"] == "upgrade" and started["started_by"] == "admin"
        assert started["options"]["version"] == "8.1.1"
        assert started["options"]["war"] == hashlib.sha256(war.read_bytes()).hexdigest()

        # One run per cluster: a second start meanwhile names the one going on, and changes nothing.
        second = operator(f"/clusters/{name}/operations/restart/", "POST", body={})
        assert second.status == 409, second.json
        assert second.json["running_deployment"] == dep_id and "is running" in second.json["detail"]

        out, err = job.communicate(timeout=400)
        assert job.returncode == 0, (out, err, explain(Deployment.objects.get(pk=dep_id)))
        printed = out.splitlines()
        assert printed[0] == f"rolling upgrade {dep_id} to Joget 8.1.1 started", out
        # The cluster's setting (on by default) backed it up first, in the same run: four backup steps, two nodes.
        assert printed[-1] == "succeeded: changed=6 ok=0 failed=0 skipped=0", out
        backup = Backup.objects.get(deployment_id=dep_id)
        assert backup.reason == "before_operation" and backup.state == "complete"
        assert f"[roll.node app1] the cluster was backed up first: backup {backup.backup_id}" in printed, out
        # The log, node by node, each line once, as the console stored it.
        stored = LogLine.objects.filter(run__deployment_id=dep_id).select_related("run__node").order_by("id")
        assert printed[1:-1] == [f"[{line.run.step} {line.run.node.name if line.run.node else 'cluster'}] {line.text}"
                                 for line in stored], out

        result, lines = follow(operator, dep_id)
        assert result["status"] == "succeeded"
        assert sorted((r["step"], r["node"], r["wave"], r["status"]) for r in result["runs"]
                      if r["step"] == "roll.node") == [("roll.node", "app1", 1, "changed"),
                                                       ("roll.node", "app2", 2, "changed")]
        assert {(r["step"], r["status"]) for r in result["runs"] if r["step"] != "roll.node"} == {
            (step, "changed") for step in backups.BACKUP_STEPS}
        assert [line["id"] for line in lines] == [line.id for line in stored]

        # An app server out of the balancer, and back: runs of their own, followed the same way.
        out = operator(f"/clusters/{name}/nodes/app2/member/", "POST", body={"state": "disabled"})
        assert out.status == 201 and out.json["operation"] == "members", out.json
        assert follow(operator, out.json["id"])[0]["status"] == "succeeded"
        assert manager_states(serving)["node02"] == "disabled"
        members = {m["node"]: m for m in operator(f"/clusters/{name}/members/").json["members"]}
        assert members["app2"]["state"] == "disabled" and members["app2"]["reported"]["state"] == "disabled"
        assert "Dis" in members["app2"]["reported"]["status"] and not members["app2"]["reported"]["serving"]
        assert members["app1"]["reported"]["serving"]
        assert operator(f"/clusters/{name}/nodes/app2/").json["balancer_state"] == "disabled"
        time.sleep(0.5)  # a request node02 had in hand when it went out is answered by now
        served_before = load.report.nodes["node02"]
        load.wait_requests(load.report.requests + 12)
        assert load.report.nodes["node02"] == served_before, "a disabled member was sent requests"
        back = operator(f"/clusters/{name}/nodes/app2/member/", "POST", body={"state": "enabled"})
        assert back.status == 201
        assert follow(operator, back.json["id"])[0]["status"] == "succeeded"

        # Back to the WAR before, node by node; then app1 alone restarted.
        rollback = operator(f"/clusters/{name}/operations/rollback/", "POST", body={})
        assert rollback.status == 201, rollback.json
        result, _ = follow(operator, rollback.json["id"])
        assert result["status"] == "succeeded" and result["recap"]["changed"] == 2, result["recap"]
        assert set(node_builds(tb).values()) == old_build
        restart = operator(f"/clusters/{name}/operations/restart/", "POST", body={"nodes": ["app1"], "batch": 1})
        assert restart.status == 201 and restart.json["options"]["nodes"] == ["app1"], restart.json
        result, _ = follow(operator, restart.json["id"])
        assert result["status"] == "succeeded"
        assert [(r["node"], r["status"]) for r in result["runs"]] == [("app1", "changed")]
        time.sleep(1.0)  # a few requests after the last node is back
    report = load.report
    print(report.summary())
    assert (report.failed, report.lost) == (0, 0), report.summary()
    assert set(node_builds(tb).values()) == old_build
    assert {b for (_, b) in report.node_builds} == old_build | {new_build}, "the load saw both builds"
    assert set(manager_states(serving).values()) == {"enabled"}
    members = api_as("viewer")(f"/clusters/{name}/members/").json
    assert members["error"] == "" and [(m["node"], m["state"], m["reported"]["serving"], m["reported"]["busy"])
                                       for m in members["members"]] == [("app1", "enabled", True, 0),
                                                                        ("app2", "enabled", True, 0)]
    assert Node.objects.get(cluster=serving, name="app2").balancer_state == "enabled"

    # Audited as the page's button is, with the token's name.
    events = AuditEvent.objects.filter(action="deployment_started").order_by("pk")
    upgrade = events.get(target=f"deployment #{dep_id}")
    assert upgrade.username == "admin" and "API token 'release pipeline'" in upgrade.details
    assert re.search(r"new jw.war jw.war \(Joget 8.1.1\)", upgrade.details), upgrade.details
    member = [e for e in events if "balancer member app2" in e.details]
    assert [e.username for e in member] == ["operator", "operator"]
    assert all("API token 'on call'" in e.details for e in member)
