"""The engine end to end: real Celery worker processes, real SSH to testbed hosts."""

import os
import signal
import subprocess
import sys
import time

import pytest
from django.core.management import call_command
from django.urls import reverse

from deployments import engine
from deployments.models import LogLine, StepRun
from tests.conftest import ROOT, wait_for, worker_database_url

pytestmark = [pytest.mark.light, pytest.mark.django_db(transaction=True)]
S = StepRun.Status


def finished(dep, timeout=60):
    def done():
        dep.refresh_from_db()
        return not dep.is_active
    wait_for(done, timeout=timeout, message=f"{dep} to finish")
    return dep


def runs(dep, step):
    return {r.node.name: r for r in dep.runs.filter(step=step).select_related("node")}


def test_second_run_changes_nothing_and_says_so(cluster):
    dep = finished(engine.start(cluster, steps=["test.marker"]))
    assert dep.status == "succeeded"
    assert {r.status for r in dep.runs.all()} == {S.CHANGED}
    assert dep.recap() == {"changed": 2, "ok": 0, "failed": 0, "skipped": 0}
    again = finished(engine.start(cluster, steps=["test.marker"]))
    assert {r.status for r in again.runs.all()} == {S.OK}
    assert all("no change" in r.message for r in again.runs.all())


def test_failure_stops_dependents_and_retry_reruns_only_the_failed_node(cluster, light_testbed):
    light_testbed.host_exec("app2", "touch /tmp/jcc-fail")
    dep = finished(engine.start(cluster, steps=["test.marker", "test.flaky", "test.after"]))
    assert dep.status == "failed"
    flaky = runs(dep, "test.flaky")
    assert flaky["app1"].status == S.CHANGED
    assert flaky["app2"].status == S.FAILED and flaky["app2"].exit_code == 3
    assert "fail flag present" in flaky["app2"].message and "Remove /tmp/jcc-fail" in flaky["app2"].hint
    assert {r.status for r in runs(dep, "test.after").values()} == {S.SKIPPED}

    light_testbed.host_exec("app2", "rm -f /tmp/jcc-fail")
    assert engine.retry(dep, "test.flaky") == 1
    dep = finished(dep)
    assert dep.status == "succeeded"
    flaky = runs(dep, "test.flaky")
    assert flaky["app1"].attempt == 1 and flaky["app2"].attempt == 2
    assert runs(dep, "test.marker")["app1"].attempt == 1
    assert {r.status for r in runs(dep, "test.after").values()} == {S.CHANGED}
    # Nothing logged was lost: the failed attempt's lines are still there, before the retry's.
    texts = list(LogLine.objects.filter(run=flaky["app2"]).values_list("text", flat=True))
    assert "fail flag present" in texts and "flag absent" in texts


def test_one_deployment_at_a_time_and_cancel_interrupts_the_remote_command(cluster, light_testbed):
    dep = engine.start(cluster, steps=["test.slow"])
    wait_for(lambda: LogLine.objects.filter(run__deployment=dep, text="tick 5").count() == 2,
             message="ticks on both nodes")
    with pytest.raises(engine.DeploymentRefused, match=f"#{dep.pk} of {cluster.name} is running"):
        engine.start(cluster, steps=["test.marker"])
    engine.cancel(dep)
    dep = finished(dep, timeout=15)
    assert dep.status == "cancelled"
    assert {r.status for r in dep.runs.all()} == {S.CANCELLED}
    for host in ("app1", "app2"):
        r = light_testbed.host_exec(host, "pgrep -f 'echo [t]ick' || true")
        assert r.stdout.strip() == "", f"the loop still runs on {host}"
    ticks = LogLine.objects.filter(run__deployment=dep, text__startswith="tick").count()
    assert ticks < 60


def test_dry_run_shows_diffs_and_changes_nothing(cluster, light_testbed):
    light_testbed.host_exec("app1", "echo route=old > /run/jcc-marker")
    dep = finished(engine.start(cluster, dry_run=True, steps=["test.marker"]))
    r = runs(dep, "test.marker")
    assert r["app1"].status == S.CHANGED and r["app2"].status == S.CHANGED
    diff = r["app1"].changes[0]["diff"]
    assert "-route=old" in diff and "+route=node01" in diff
    assert r["app2"].changes[0]["diff"].startswith("--- /dev/null")
    assert light_testbed.host_exec("app1", "cat /run/jcc-marker").stdout == "route=old\n"
    assert light_testbed.host_exec("app2", "test -e /run/jcc-marker; echo $?").stdout.strip() == "1"


def test_live_log_reaches_the_page_while_the_step_runs(cluster, light_testbed, admin_client):
    light_testbed.host_exec("app1", "echo 30 > /tmp/jcc-slow-ticks")
    dep = engine.start(cluster, steps=["test.slow"])
    run = wait_for(lambda: dep.runs.filter(node__name="app1", status=S.RUNNING).first(), message="running")
    url = reverse("deployments:run_log", args=[dep.pk, run.pk])
    seen, cursor, snapshots = [], 0, 0
    while True:
        data = admin_client.get(url, {"after": cursor}).json()
        seen += [text for _, _, text in data["lines"]]
        if data["lines"]:
            cursor = data["lines"][-1][0]
            if not data["finished"]:
                snapshots += 1
        if data["finished"]:
            break
        time.sleep(0.25)
    assert snapshots >= 3, "lines should arrive in several polls while the step runs"
    assert [t for t in seen if t.startswith("tick")] == [f"tick {i}" for i in range(1, 31)]
    assert data["status"] == S.CHANGED
    page = admin_client.get(reverse("deployments:deployment_detail", args=[dep.pk]))
    assert page.status_code == 200 and b"test.slow" in page.content


def test_secrets_are_masked_before_storage(cluster):
    from nodes.models import SharedDatabase

    password = SharedDatabase.objects.get(cluster=cluster).password
    assert password
    dep = finished(engine.start(cluster, steps=["test.secret"]))
    assert dep.status == "succeeded"
    texts = list(LogLine.objects.filter(run__deployment=dep).values_list("text", flat=True))
    assert any(t == "pw=********" for t in texts)
    assert not any(password in t for t in texts)


def test_deploy_command_follows_and_prints_the_recap(cluster, light_testbed, capsys):
    light_testbed.host_exec("app2", "touch /tmp/jcc-fail")
    with pytest.raises(SystemExit) as exit_info:
        call_command("deploy", cluster.name, "--steps", "test.marker,test.flaky,test.after", "--follow")
    assert exit_info.value.code == 1
    out = capsys.readouterr().out
    assert "[test.flaky app2] fail flag present" in out
    assert out.strip().splitlines()[-1] == "changed=3 ok=0 failed=1 skipped=2"
    light_testbed.host_exec("app2", "rm -f /tmp/jcc-fail")
    call_command("deploy", cluster.name, "--steps", "test.marker", "--follow")
    assert capsys.readouterr().out.strip().splitlines()[-1] == "changed=0 ok=2 failed=0 skipped=0"


def test_worker_killed_mid_step_is_marked_failed_and_resume_completes(cluster, light_testbed, settings,
                                                                     celery_queue):
    """SIGKILL a worker while it runs a step: the sweeper marks the step failed
    (never 'running' forever) and resume finishes the deployment."""
    from joget_cluster.celery import app

    queue = f"{celery_queue}-doomed"
    env = {**os.environ, "CELERY_QUEUE": queue, "DATABASE_URL": worker_database_url()}
    log = open(ROOT / "var" / f"test-worker-{queue}.log", "w")  # noqa: SIM115
    doomed = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "joget_cluster", "worker", "-P", "threads", "-c", "4", "-Q", queue,
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{queue}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    light_testbed.host_exec("app1", "echo 40 > /tmp/jcc-slow-ticks")
    light_testbed.host_exec("app2", "echo 40 > /tmp/jcc-slow-ticks")
    app.conf.task_default_queue = queue
    try:
        dep = engine.start(cluster, steps=["test.slow"])
        wait_for(lambda: LogLine.objects.filter(run__deployment=dep, text="tick 3").count() == 2, timeout=30,
                 message="the doomed worker to run the step")
    finally:
        app.conf.task_default_queue = celery_queue
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait()
    log.close()
    stored = LogLine.objects.filter(run__deployment=dep).count()
    assert set(dep.runs.values_list("status", flat=True)) == {S.RUNNING}

    settings.STEP_HEARTBEAT_TIMEOUT = 3
    time.sleep(3.5)
    assert engine.sweep() == 2
    dep.refresh_from_db()
    assert dep.status == "failed"
    assert all("went silent" in r.message for r in dep.runs.all())
    assert LogLine.objects.filter(run__deployment=dep).count() >= stored

    for host in ("app1", "app2"):
        light_testbed.host_exec(host, "echo 3 > /tmp/jcc-slow-ticks")
    engine.resume(dep)
    dep = finished(dep)
    assert dep.status == "succeeded"
    assert all(r.attempt == 2 for r in dep.runs.all())


def test_steps_starting_on_a_node_at_once_share_one_ssh_connection(cluster, monkeypatch):
    # Four steps of one node start together: one connect, one connection (each used to open its own and
    # leave all but the last unclosed).
    from concurrent.futures import ThreadPoolExecutor

    from nodes import ssh

    opened = []
    real_open = ssh.open_connection
    monkeypatch.setattr(ssh, "open_connection", lambda node, **kw: opened.append(node.name) or real_open(node, **kw))
    node = cluster.app_servers().get(name="app1")
    pool = engine.ConnectionPool()
    try:
        with ThreadPoolExecutor(4) as ex:
            conns = list(ex.map(lambda _: pool.get(999, node), range(4)))
        assert opened == ["app1"]
        assert len({id(c) for c in conns}) == 1 and conns[0].run("hostname").stdout.strip() == "app1"
    finally:
        pool.close_deployment(999)
    assert not conns[0].is_active


def test_a_run_waiting_for_a_step_thread_keeps_its_heartbeat_and_can_be_cancelled(cluster, light_testbed, settings,
                                                                                 celery_queue):
    """One step thread (STEP_THREADS=1): app2's run is claimed with app1's but waits for the thread. The
    sweeper must not take it for a dead worker's, and a Cancel reaches it before it starts."""
    from joget_cluster.celery import app
    from tests.conftest import celery_worker

    queue = f"{celery_queue}-onethread"
    light_testbed.host_exec("app1", "echo 60 > /tmp/jcc-slow-ticks")  # 6 s
    light_testbed.host_exec("app2", "echo 60 > /tmp/jcc-slow-ticks")
    with celery_worker(queue, concurrency=4, env={"STEP_THREADS": "1"}):
        app.conf.task_default_queue = queue
        try:
            dep = engine.start(cluster, steps=["test.slow"])
            first = wait_for(lambda: dep.runs.filter(lines__text="tick 2").first(), timeout=30,
                             message="one run to tick")
            waiting = dep.runs.exclude(pk=first.pk).get()
            assert waiting.status == S.RUNNING and not waiting.lines.exists()
            settings.STEP_HEARTBEAT_TIMEOUT = 3
            time.sleep(3.5)
            assert engine.sweep() == 0  # both heartbeats are fresh: the flusher beats for the waiting run too
            engine.cancel(dep)
            dep = finished(dep, timeout=30)
        finally:
            app.conf.task_default_queue = celery_queue
    waiting.refresh_from_db()
    assert dep.status == "cancelled"
    assert waiting.status == S.CANCELLED and waiting.message == "Cancelled before it started."
    assert list(waiting.lines.values_list("text", flat=True)) == ["CANCELLED: Cancelled before it started."]
