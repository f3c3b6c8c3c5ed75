"""A skipped run names the run that really failed: on its own node, and through a chain of skips."""

from deployments.engine import _skip_reason
from deployments.models import StepRun
from nodes.models import Node

S = StepRun.Status
APP1, APP2 = Node(pk=1, name="app1"), Node(pk=2, name="app2")


def run(step, node, status, message=""):
    return StepRun(step=step, node=node, status=status, message=message)


def test_the_failure_on_the_runs_own_node_is_named_not_the_first_in_the_list():
    blocking = [run("tomcat.install", APP1, S.FAILED), run("tomcat.install", APP2, S.FAILED)]
    assert _skip_reason(run("tomcat.base", APP2, S.PENDING), blocking) == \
        "Skipped: tomcat.install on app2 did not succeed (failed)."


def test_a_skipped_dependency_passes_on_its_own_cause():
    skipped = run("tomcat.base", APP2, S.SKIPPED, "Skipped: tomcat.install on app2 did not succeed (failed).")
    blocking = [run("tomcat.base", APP1, S.OK), skipped]
    assert _skip_reason(run("joget.setenv", APP2, S.PENDING), [skipped]) == skipped.message
    assert _skip_reason(run("joget.running", APP1, S.PENDING), [b for b in blocking if b.status != S.OK]) == \
        skipped.message


def test_a_real_failure_comes_before_a_skip_and_a_cluster_step_has_no_node():
    blocking = [run("shared_directory.verify", None, S.SKIPPED, "Skipped: x did not succeed (failed)."),
                run("database.verify", None, S.FAILED)]
    assert _skip_reason(run("post_test", None, S.PENDING), blocking) == \
        "Skipped: database.verify did not succeed (failed)."
