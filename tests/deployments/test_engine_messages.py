"""What a step's outcome says, in plain words: planned changes in a dry run, checks in a deployment, and the
checks a dry run does not run."""

import pytest
from django.urls import reverse

from deployments import engine
from deployments.models import StepRun
from tests.deployments.test_engine import finished, runs

pytestmark = [pytest.mark.light, pytest.mark.django_db(transaction=True)]
S = StepRun.Status


def test_a_dry_run_says_what_it_would_do_and_which_checks_it_did_not_run(cluster, admin_client):
    dep = finished(engine.start(cluster, dry_run=True, steps=["test.marker", "test.checks"]))
    marker, checks = runs(dep, "test.marker"), runs(dep, "test.checks")
    assert marker["app1"].message == "Would create /run/jcc-marker"
    assert checks["app1"].status == S.OK
    html = admin_client.get(reverse("deployments:deployment_detail", args=[dep.pk])).content.decode()
    assert html.count("Not checked in a dry run") == 2  # both app servers
    assert "A dry run does not run checks: this one runs in the deployment." in html


def test_a_check_step_says_what_it_checked(cluster):
    dep = finished(engine.start(cluster, steps=["test.checks"]))
    run = runs(dep, "test.checks")["app1"]
    assert run.status == S.OK
    assert run.message == ("Passed: reachable, route set. Seen: – multicast: not applicable here. "
                           "Nothing needed changing.")
