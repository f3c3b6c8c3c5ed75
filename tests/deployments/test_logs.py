"""Big logs: the page opens on the tail, older lines come on demand, the download is whole."""

import pytest
from django.urls import reverse
from django.utils import timezone

from deployments.models import Deployment, LogLine, StepRun
from nodes.models import Cluster

pytestmark = pytest.mark.django_db


@pytest.fixture
def big_run():
    cluster = Cluster.objects.create(name="logs")
    dep = Deployment.objects.create(cluster=cluster, status="succeeded")
    run = StepRun.objects.create(deployment=dep, step="test.slow", position=0, status="ok", last_seq=100_000)
    now = timezone.now()
    LogLine.objects.bulk_create(
        (LogLine(run=run, seq=i, stream="stdout", text=f"line {i}", time=now) for i in range(1, 100_001)),
        batch_size=10_000,
    )
    return run


def test_tail_first_then_older_on_demand(admin_client, big_run):
    url = reverse("deployments:run_log", args=[big_run.deployment_id, big_run.pk])
    data = admin_client.get(url).json()
    assert len(data["lines"]) == 500 and data["lines"][-1][2] == "line 100000"
    assert data["first_seq"] == 99_501 and data["finished"]
    older = admin_client.get(url, {"before": 99_501}).json()
    assert older["lines"][0][0] == 99_001 and older["lines"][-1][0] == 99_500


def test_download_is_whole(admin_client, big_run):
    url = reverse("deployments:run_log_download", args=[big_run.deployment_id, big_run.pk])
    response = admin_client.get(url)
    body = b"".join(response.streaming_content).decode()
    lines = body.splitlines()
    assert len(lines) == 100_000
    assert lines[0].endswith("line 1") and lines[-1].endswith("line 100000")
    assert "attachment" in response["Content-Disposition"]
