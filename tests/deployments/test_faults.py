"""Faults on the testbed: each ends in a clear state, loses no stored log line, and recovers by resume.

(The worker killed mid-step is in test_engine.py.) The machine's own Redis and PostgreSQL are shared
with other engineers' test runs, so neither is restarted here: Redis is a private redis-server with
its own worker, and a PostgreSQL restart is simulated the way its clients see one.
"""

import contextlib
import socket
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings as dj_settings
from django.db import close_old_connections, connection
from django.urls import reverse

from deployments import checklist, engine
from deployments.models import LogLine, StepRun
from nodes import ssh
from nodes.inventory import load_inventory
from nodes.models import AuditEvent, Node
from tests.conftest import celery_worker, wait_for

# How deployments are waited for and read: as in test_engine (the `cluster` fixture: conftest.py).
from tests.deployments.test_engine import finished, runs

S = StepRun.Status
DB_STEPS = ["database.server", "database.schema", "database.verify"]
SCHEMA = Path(__file__).parent / "fixtures" / "small_schema.sql"


def ticks(light_testbed, **per_host):
    for host, n in per_host.items():
        light_testbed.host_exec(host, f"echo {int(n)} > /tmp/jcc-slow-ticks", check=True)


def ticked(dep, node, n):
    return LogLine.objects.filter(run__deployment=dep, run__node__name=node, text=f"tick {n}").exists()


def assert_log_whole(run):
    """Every line the run stored is still there: seq 1..last with no gap, and each attempt's ticks in order."""
    run.refresh_from_db()
    seqs = list(LogLine.objects.filter(run=run).values_list("seq", flat=True))
    assert seqs == list(range(1, run.last_seq + 1)), f"gaps in the log of {run}"
    attempt, count = [], []
    for text in LogLine.objects.filter(run=run).values_list("text", flat=True):
        if text.startswith(("Running ", "Probing ")):
            attempt.append([])
        elif text.startswith("tick "):
            attempt[-1].append(int(text.split()[1]))
    for numbers in attempt:
        count.append(len(numbers))
        assert numbers == list(range(1, len(numbers) + 1)), f"a tick is missing in {run}: {numbers}"
    return count


# -- a node's sshd stops mid-step ------------------------------------------------------------------------

@pytest.mark.light
@pytest.mark.django_db(transaction=True)
def test_node_down_mid_step_fails_naming_it_and_resume_completes_once_it_is_back(cluster, light_testbed):
    ticks(light_testbed, app1=200, app2=5)
    dep = engine.start(cluster, steps=["test.slow"])
    wait_for(lambda: ticked(dep, "app1", 5), timeout=30, message="app1 to tick")
    light_testbed.stop_host("app1")
    try:
        dep = finished(dep, timeout=30)
        r = runs(dep, "test.slow")
        assert dep.status == "failed"
        assert r["app2"].status == S.CHANGED
        assert r["app1"].status == S.FAILED
        assert "app1" in r["app1"].message and "connection lost" in r["app1"].message, r["app1"].message
        before = assert_log_whole(r["app1"])
        assert before[0] >= 5
    finally:
        light_testbed.start_host("app1")
    ticks(light_testbed, app1=3, app2=3)
    engine.resume(dep)
    dep = finished(dep)
    assert dep.status == "succeeded", {k: v.message for k, v in runs(dep, "test.slow").items()}
    app1 = runs(dep, "test.slow")["app1"]
    assert app1.attempt == 2
    assert assert_log_whole(app1)[1:] == [3]


# -- a host key changes between two runs ------------------------------------------------------------------

KEY = "/etc/ssh/ssh_host_ed25519_key"


@pytest.mark.light
@pytest.mark.django_db(transaction=True)
def test_a_console_error_around_the_step_fails_its_runs_at_once_with_the_reason(cluster, admin_client):
    """The worker cannot decrypt a stored secret it loads before any step runs (the encryption key was changed
    by hand): the runs fail now, saying so in their log and on the page, not 30 s later as 'went silent'."""
    from licensing.models import License

    lic = License.objects.create(node=cluster.nodes.get(name="app1"))
    with connection.cursor() as cur:  # a value another key encrypted: the ORM would encrypt it with ours
        cur.execute("UPDATE licensing_license SET license_text = %s WHERE id = %s", ["gAAAAAB-other-key", lic.pk])
    dep = finished(engine.start(cluster, steps=["test.marker"]), timeout=15)  # the sweeper needs 30 s and more
    assert dep.status == "failed"
    reason = "Internal error in the console: ValueError: A stored secret cannot be decrypted"
    for run in dep.runs.all():
        assert run.status == S.FAILED and run.message.startswith(reason) and "see the worker log" in run.message
        assert LogLine.objects.filter(run=run, text__startswith=f"FAILED: {reason}").exists()
    page = admin_client.get(reverse("deployments:deployment_detail", args=[dep.pk])).content.decode()
    assert reason in page and "went silent" not in page


@pytest.mark.light
@pytest.mark.django_db(transaction=True)
def test_changed_host_key_stops_the_node_until_the_admin_confirms_it(cluster, light_testbed, admin_client):
    tb = light_testbed
    first = engine.start(cluster, steps=["test.marker"])
    assert finished(first).status == "succeeded"
    tb.host_exec("app1", "rm -f /run/jcc-marker", check=True)
    tb.host_exec("app1", f"mkdir -p /etc/jcc-key-backup && cp -p {KEY} {KEY}.pub /etc/jcc-key-backup/", check=True)
    try:
        # The server is reinstalled (or impersonated): a new host key, same address.
        tb.host_exec("app1", f"rm -f {KEY} {KEY}.pub && ssh-keygen -q -t ed25519 -N '' -f {KEY}", check=True)
        new_key = " ".join(tb.host_exec("app1", f"cat {KEY}.pub", check=True).stdout.split()[:2])
        tb.stop_host("app1")
        tb.start_host("app1")

        dep = finished(engine.start(cluster, steps=["test.marker"]))
        assert dep.status == "failed"
        r = runs(dep, "test.marker")
        assert r["app2"].status == S.OK
        assert r["app1"].status == S.FAILED
        assert "app1: the host key changed" in r["app1"].message and "Nothing was run" in r["app1"].message
        assert ssh.fingerprint(new_key) in r["app1"].message
        assert tb.host_exec("app1", "test -e /run/jcc-marker; echo $?").stdout.strip() == "1", "it ran on app1"
        # The node page shows the key the server offers now beside the pinned one, with Confirm.
        node = Node.objects.get(cluster=cluster, name="app1")
        assert node.offered_host_key == new_key and node.host_key != new_key
        page = admin_client.get(node.get_absolute_url()).content.decode()
        assert "differs from the pinned key" in page and ssh.fingerprint(new_key) in page
        # Until the admin confirms, every run stops there again.
        engine.resume(dep)
        again = runs(finished(dep), "test.marker")["app1"]
        assert again.status == S.FAILED and "the host key changed" in again.message
        # The audit trail has the mismatch the worker met, once, with both fingerprints.
        seen = AuditEvent.objects.filter(action=AuditEvent.Action.HOST_KEY_MISMATCH, cluster=cluster.name)
        assert [e.details for e in seen] == [
            f"pinned {ssh.fingerprint(node.host_key)}, offered {ssh.fingerprint(new_key)}"]

        # The admin compares the fingerprint and presses Confirm (the same view the button posts to).
        url = reverse("nodes:node_confirm_host_key", args=[cluster.name, "app1"])
        assert admin_client.post(url, {"fingerprint": ssh.fingerprint(new_key)}).status_code == 302
        node.refresh_from_db()
        assert node.host_key == new_key and not node.offered_host_key
        engine.resume(dep)
        dep = finished(dep)
        assert dep.status == "succeeded", runs(dep, "test.marker")["app1"].message
        assert runs(dep, "test.marker")["app1"].status == S.CHANGED
        assert tb.host_exec("app1", "cat /run/jcc-marker").stdout == "route=node01\n"
    finally:
        # Put the testbed's own key back: later tests pin it from the inventory.
        tb.host_exec("app1", "cp -p /etc/jcc-key-backup/* /etc/ssh/ && rm -rf /etc/jcc-key-backup", check=True)
        tb.stop_host("app1")
        tb.start_host("app1")
    assert tb.ssh_run("app1", "true")[0] == 0


# -- the console's own database restarts mid-deployment --------------------------------------------------

def cut_database_sessions() -> int:
    """What every client of PostgreSQL sees when it restarts: its session ends under it.

    The machine's PostgreSQL serves other engineers' test runs, so it is not restarted: every session
    on this test database (the worker's step and log threads, this process's "web" connection) is
    terminated instead, from a session of our own.
    """
    import psycopg2

    db = dj_settings.DATABASES["default"]
    with contextlib.closing(psycopg2.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432,
                                             user=db["USER"], password=db["PASSWORD"], dbname=db["NAME"])) as c:
        c.autocommit = True
        with c.cursor() as cur:
            cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            return cur.fetchone()[0]


@pytest.mark.light
@pytest.mark.django_db(transaction=True)
def test_console_database_restart_mid_step_keeps_every_line_and_the_run_finishes(cluster, light_testbed,
                                                                               admin_client):
    ticks(light_testbed, app1=60, app2=60)
    dep = engine.start(cluster, steps=["test.slow"])
    wait_for(lambda: ticked(dep, "app1", 10) and ticked(dep, "app2", 10), timeout=30, message="both nodes to tick")
    stored = list(LogLine.objects.filter(run__deployment=dep).values_list("pk", "text"))
    assert cut_database_sessions() >= 3  # at least both step threads and this process

    # The web side: a server closes a request's connection when the next request starts (CONN_MAX_AGE=0);
    # Django's test client leaves out that one signal handler, so call it here as the server would.
    close_old_connections()
    run = dep.runs.get(node__name="app1")
    data = admin_client.get(reverse("deployments:run_log", args=[dep.pk, run.pk])).json()
    assert [t for _, _, t in data["lines"] if t == "tick 10"] == ["tick 10"]

    dep = finished(dep, timeout=60)
    assert dep.status == "succeeded", {k: v.message for k, v in runs(dep, "test.slow").items()}
    for r in dep.runs.all():
        assert assert_log_whole(r) == [60]
    kept = dict(LogLine.objects.filter(pk__in=[pk for pk, _ in stored]).values_list("pk", "text"))
    assert kept == dict(stored), "a line stored before the restart was lost or changed"


# -- Redis (the broker) restarts mid-deployment -------------------------------------------------------------

class PrivateRedis:
    """A redis-server of this test's own, without persistence: a restart loses every queued message,
    as a Redis without AOF does. (The machine's Redis is shared with other test runs: not touched.)"""

    def __init__(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.answers, timeout=10, message=f"redis on port {self.port}")

    def answers(self):
        import redis

        try:
            return redis.Redis(port=self.port, socket_timeout=1).ping()
        except redis.ConnectionError:
            return False

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)

    def restart(self, down_for=1.0):
        self.stop()
        time.sleep(down_for)
        self.start()


@pytest.fixture
def private_broker(monkeypatch, celery_queue):
    """A private Redis, a one-thread worker on it, and this process's engine sending to it."""
    from kombu import Connection

    from deployments import tasks

    broker = PrivateRedis()
    broker.start()
    queue = f"{celery_queue}-private"

    def sender(task):
        def send(pk):
            with Connection(broker.url) as conn:
                task.apply_async((pk,), connection=conn, queue=queue)
        return send

    monkeypatch.setattr(engine, "_enqueue_advance", sender(tasks.advance_deployment))
    monkeypatch.setattr(engine, "_enqueue_run", sender(tasks.run_step))
    monkeypatch.setattr(engine, "_enqueue_runs", sender(tasks.run_steps))
    try:
        with celery_worker(queue, broker_url=broker.url, concurrency=1) as worker:
            yield broker, worker
    finally:
        broker.stop()


@pytest.mark.light
@pytest.mark.django_db(transaction=True)
def test_redis_restart_mid_step_loses_no_line_and_the_sweeper_requeues_the_lost_message(cluster, light_testbed,
                                                                                      private_broker, settings):
    broker, worker = private_broker
    ticks(light_testbed, app1=30, app2=30)
    dep = engine.start(cluster, steps=["test.slow", "test.later"])
    wait_for(lambda: dep.runs.filter(status=S.RUNNING, lines__text="tick 3").first(), timeout=30,
             message="a step to tick")
    # One worker thread, busy with test.slow (one task for both nodes): test.later's task waits in Redis,
    # and goes down with it.
    assert set(dep.runs.filter(step="test.later").values_list("status", flat=True)) == {S.QUEUED}

    broker.restart()
    wait_for(lambda: set(dep.runs.filter(step="test.slow").values_list("status", flat=True)) == {S.CHANGED},
             timeout=30, message="the running steps to finish through the broker restart")
    assert worker.poll() is None, "the worker died with its broker"
    time.sleep(1.0)
    dep.refresh_from_db()
    later = list(dep.runs.filter(step="test.later"))
    # A clear state: the deployment runs, the lost runs say queued (never started, nothing half-done).
    assert dep.status == "running" and {(r.status, r.attempt) for r in later} == {(S.QUEUED, 0)}

    # The sweeper (every STEP_SWEEP_INTERVAL in beat) sends them again; the reconnected worker runs them.
    settings.STEP_HEARTBEAT_TIMEOUT = 1
    time.sleep(1.2)
    assert engine.sweep() == 2
    dep = finished(dep, timeout=30)
    assert dep.status == "succeeded", {(r.step, r.node.name): r.message for r in dep.runs.all()}
    for r in dep.runs.filter(step="test.slow"):
        assert assert_log_whole(r) == [30]
    assert {r.attempt for r in dep.runs.all()} == {1}
    for host in ("app1", "app2"):
        assert light_testbed.host_exec(host, "cat /run/jcc-later").stdout == "done\n"


# -- the database node is down during the prerequisite checks -------------------------------------------------

def result(run, item, node=None):
    qs = run.results.filter(item=item)
    return qs.get(node__name=node) if node else qs.get(node=None)


@pytest.mark.full
@pytest.mark.django_db(transaction=True)
def test_database_node_down_fails_its_check_naming_it_others_still_report(full_testbed, celery_worker_process):
    tb = full_testbed
    inv = dict(tb)
    inv["artifacts"] = [{"kind": "schema_sql", "path": str(SCHEMA)}]
    cluster = load_inventory(inv, replace=True)
    dep = finished(engine.start(cluster, steps=DB_STEPS), timeout=240)
    assert dep.status == "succeeded", {(r.step, r.node_id): r.message for r in dep.runs.all()}
    before = checklist.run_now(cluster)
    assert {result(before, "database", n).status for n in ("app1", "app2")} == {"pass"}

    tb.stop_host("db")
    try:
        run = checklist.run_now(cluster)
        assert run.status == "failed" and run.finished
        address = tb.address("db")
        for node in ("app1", "app2"):
            r = result(run, "database", node)
            assert r.status == "fail"
            assert f"{address}:3306" in r.found and "Can't connect" in r.found, r.found
            assert f"the database node db ({address}) is up" in r.fix, r.fix
            # The items that do not need the database still report what they found.
            assert result(run, "shared_directory", node).status == "pass"
            assert result(run, "replication", node).status == "pass"
        assert not run.results.filter(status="pending").exists()
    finally:
        tb.start_host("db")
    # Back up: the host boots with sshd only (no init system); the database step starts the server again.
    again = finished(engine.start(cluster, steps=["database.server"]), timeout=120)
    assert again.status == "succeeded" and "start the server" in again.runs.get().message
    after = checklist.run_now(cluster)
    for node in ("app1", "app2"):
        r = result(after, "database", node)
        assert r.status == "pass" and "select, insert, update, delete, create, alter and drop work" in r.found
