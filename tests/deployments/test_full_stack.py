"""The whole guide in one plan: from empty hosts to Joget behind the balancer, through the real worker.

Hosts of their own (a full testbed for this module only): the other step modules leave the shared
testbed's database, Tomcats and Apache in states this test must not start from. The plan is every
registered step of the guide (shared directory in "existing" mode, kernel NFS is not available
here; managed MariaDB; Debian's tomcat10 as CATALINA_HOME; managed Apache), the deployment runs on
a real Celery worker over SSH, and the post-deployment test goes through the balancer.
"""

import json
import urllib.request

import pytest

from deployments import engine
from deployments.models import Deployment, StepRun
from deployments.steps import plan_steps
from nodes.inventory import load_inventory
from tests.conftest import wait_for
from tests.deployments.test_steps_joget import explain, sh, statuses
from tests.testbed_plugin import _session_testbed

S = StepRun.Status
pytestmark = [pytest.mark.full, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def stack_testbed():
    yield from _session_testbed("stack", full=True)


@pytest.fixture
def cluster(stack_testbed, celery_worker_process):
    return load_inventory(dict(stack_testbed), replace=True)


def run_plan(cluster, timeout=900) -> Deployment:
    dep = engine.start(cluster)

    def done():
        dep.refresh_from_db()
        return not dep.is_active

    wait_for(done, timeout=timeout, interval=1, message=f"{dep} to finish")
    return dep


def through_balancer(tb, path="/jw/web/json/workflow/currentUsername") -> tuple[int, str]:
    with urllib.request.urlopen(f"http://{tb.address('lb')}{path}", timeout=10) as resp:  # noqa: S310 - testbed
        return resp.status, resp.read().decode()


def post_test_lines(dep) -> list[str]:
    run = dep.runs.get(step="post_test")
    return [c["description"] for c in run.changes]


def test_empty_hosts_to_a_tested_cluster_then_nothing_to_change_then_only_the_dead_tomcat(cluster, stack_testbed):
    tb = stack_testbed
    # Empty: no Tomcat base, no database server running, no balancer site.
    for host in tb.app_servers:
        assert sh(tb, host, "test -e /opt/joget/tomcat-base && echo yes || echo no").strip() == "no"
    assert tb.host_exec("db", "pgrep -x mariadbd").returncode == 1
    assert sh(tb, "lb", "test -e /etc/apache2/sites-enabled/jwsite.conf && echo yes || echo no").strip() == "no"

    first = run_plan(cluster)
    assert first.status == "succeeded", explain(first)
    st = statuses(first)
    assert {step for step, _ in st} == {s.key for s in plan_steps(cluster)}, "every step of the plan ran"
    for key in ("database.server", "database.schema", "tomcat.base", "joget.war", "joget.running",
                "load_balancer.site"):
        assert S.CHANGED in {status for (step, _), status in st.items() if step == key}, (key, explain(first))
    assert st[("post_test", "-")] == S.OK, explain(first)
    checks = post_test_lines(first)
    assert [line.split(":")[0] for line in checks] == [
        "✓ /jw answers", "✓ sticky", "✓ failover", "✓ rejoin"], checks
    assert status_and_user(tb) == (200, "roleAnonymous")

    # Run twice: the second run changes nothing and says so, step by step.
    second = run_plan(cluster)
    assert second.status == "succeeded", explain(second)
    assert set(statuses(second).values()) == {S.OK}, explain(second)

    # A Tomcat dies: the next run restarts it (changed) and touches nothing else.
    tb.host_exec("app2", "pkill -9 java")
    wait_for(lambda: tb.host_exec("app2", "pgrep -x java").returncode == 1, message="java gone on app2")
    third = run_plan(cluster)
    assert third.status == "succeeded", explain(third)
    st = statuses(third)
    assert st.pop(("joget.running", "app2")) == S.CHANGED, explain(third)
    assert set(st.values()) == {S.OK}, explain(third)
    assert [line.split(":")[0] for line in post_test_lines(third)][-1] == "✓ rejoin"
    assert status_and_user(tb) == (200, "roleAnonymous")


def status_and_user(tb) -> tuple[int, str]:
    status, body = through_balancer(tb)
    return status, json.loads(body)["username"]
