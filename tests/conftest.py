"""Shared fixtures: users, a real Celery worker process, and the testbed plugin.

The worker is a separate `celery worker` process (threads pool) on the real
Redis broker, reading the same PostgreSQL test database: tests that use it
need committed data, so they take `transactional_db`.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

_TESTBED = ["tests.testbed_plugin"] if (Path(__file__).parent / "testbed_plugin.py").exists() else []
pytest_plugins = ["tests.browser_plugin", *_TESTBED]

ROOT = Path(__file__).resolve().parent.parent
(ROOT / "var").mkdir(exist_ok=True)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """One test database per pytest process, so several runs on one machine never collide."""
    name = f"test_jcc_{os.getpid()}"
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        # A file, not SQLite's in-memory test database: the worker processes read the same one.
        name = str(ROOT / "var" / f"{name}.sqlite3")
    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = name


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.com", "admin-pass-123")


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture(scope="session")
def celery_queue():
    return f"jcc-test-{uuid.uuid4().hex[:8]}"


def worker_database_url() -> str:
    """The test database as a DATABASE_URL, for the worker processes the tests start (either backend)."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@contextlib.contextmanager
def celery_worker(queue, *, broker_url=None, concurrency=16, env=None):
    """A real `celery worker` process (threads pool) on `queue`, stopped on exit.

    `broker_url` points it at another broker than the settings' (a test's private Redis); `env` adds settings.
    """
    env = {**os.environ, **(env or {}), "DATABASE_URL": worker_database_url()}
    env["CELERY_QUEUE"] = queue
    if broker_url:
        env["CELERY_BROKER_URL"] = broker_url
    logfile = ROOT / "var" / f"test-worker-{queue}.log"
    log = open(logfile, "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "joget_cluster", "worker", "-P", "threads", "-c", str(concurrency),
         "-Q", queue, "-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat",
         "-n", f"{queue}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if "ready." in logfile.read_text():
                break
            if proc.poll() is not None:
                raise RuntimeError(f"celery worker exited: see var/test-worker-{queue}.log")
            time.sleep(0.1)
        else:
            raise RuntimeError("celery worker did not become ready in 30 s")
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, celery_queue):
    """A real worker process, started once per session, stopped at the end."""
    from joget_cluster.celery import app

    app.conf.task_default_queue = celery_queue
    with celery_worker(celery_queue) as proc:
        yield proc


def wait_for(predicate, timeout=20.0, interval=0.1, message="condition"):
    """Poll until predicate() is truthy; return its value or fail the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {message}")


@pytest.fixture
def tracemalloc_peak():
    """`with tracemalloc_peak() as peak:` ... `peak.value` is the peak traced allocation in bytes."""
    import contextlib
    import tracemalloc
    from types import SimpleNamespace

    @contextlib.contextmanager
    def measure():
        result = SimpleNamespace(value=0)
        tracemalloc.start()
        try:
            yield result
        finally:
            result.value = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()

    return measure
