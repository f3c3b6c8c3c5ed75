"""A scratch console for benchmarks: its own PostgreSQL database, a gunicorn web
server and a Celery worker as real processes, and a light testbed.

Used as a context manager; everything it starts it stops, and the scratch
database is dropped at the end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = "postgres://jcc_test:jcc_test@127.0.0.1:5432"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(db_name: str) -> dict:
    env = dict(os.environ)
    env.update(
        SECRET_KEY="benchmark-only-secret-key-0123456789abcdefghij",
        SECRETS_ENCRYPTION_KEY="dGVzdC1vbmx5LWtleS1ub3QtZm9yLXByb2R1Y3Rpb24=",
        DATABASE_URL=f"{PG}/{db_name}",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/14",
        CELERY_QUEUE=f"bench-{os.getpid()}",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        EXTRA_STEP_MODULES="benchmarks.bench_steps",
        DJANGO_SETTINGS_MODULE="joget_cluster.settings",
        # Playwright's sync API runs an event loop in this thread; the ORM calls here are plain blocking calls.
        DJANGO_ALLOW_ASYNC_UNSAFE="true",
    )
    return env


def psql(sql: str) -> None:
    subprocess.run(["psql", f"{PG}/postgres", "-q", "-c", sql], check=True, capture_output=True)


class Console:
    def __init__(self, name: str = "bench", worker_concurrency: int = 32, worker_args: tuple[str, ...] = (),
                 env: dict | None = None, workers: int = 1):
        self.db_name = f"jcc_{name}_{os.getpid()}"
        self.env = base_env(self.db_name)
        self.env.update(env or {})
        self.worker_args = tuple(worker_args)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.concurrency = worker_concurrency
        self.workers = workers  # worker processes (each with `worker_concurrency` threads)
        self.procs: list[subprocess.Popen] = []

    def manage(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=True,
                              capture_output=True, text=True, **kw)

    def spawn(self, *argv: str) -> subprocess.Popen:
        log = open(ROOT / "var" / f"bench-{argv[2] if len(argv) > 2 else 'x'}-{os.getpid()}.log", "w")  # noqa: SIM115
        p = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def __enter__(self) -> Console:
        (ROOT / "var").mkdir(exist_ok=True)
        psql(f"DROP DATABASE IF EXISTS {self.db_name}")
        psql(f"CREATE DATABASE {self.db_name}")
        self.manage("migrate", "-v0")
        self.manage("shell", "-c", "from django.contrib.auth.models import User; "
                                   "User.objects.create_superuser('bench', '', 'bench-pass-123')")
        for i in range(self.workers):
            self.spawn(sys.executable, "-m", "celery", "-A", "joget_cluster", "worker", "-P", "threads",
                       "-c", str(self.concurrency), "-Q", self.env["CELERY_QUEUE"], "--without-gossip",
                       "--without-mingle", "--without-heartbeat", "-l", "warning", "-n", f"bench{i}@%h",
                       *self.worker_args)
        self.spawn(sys.executable, "-m", "gunicorn", "joget_cluster.wsgi", "-b", f"127.0.0.1:{self.port}",
                   "--threads", "8", "--workers", "2")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(self.url + "/healthz", timeout=1)  # noqa: S310
                break
            time.sleep(0.2)
        time.sleep(1.5)  # the worker's consumer
        os.environ.update(self.env)
        import django

        django.setup()
        return self

    @property
    def worker_procs(self) -> list[subprocess.Popen]:
        return self.procs[:self.workers]

    @property
    def web(self) -> subprocess.Popen:
        return self.procs[self.workers]

    def __exit__(self, *exc):
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        from django.db import connections

        connections.close_all()
        psql(f"DROP DATABASE IF EXISTS {self.db_name} WITH (FORCE)")


def chromium(playwright):
    return playwright.chromium.launch(
        executable_path="/usr/bin/chromium",
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--no-first-run"],
    )


def login(page, base_url: str) -> None:
    page.goto(base_url + "/login/")
    page.fill("#id_username", "bench")
    page.fill("#id_password", "bench-pass-123")
    page.click("button[type=submit]")
    page.wait_for_url(base_url + "/")
