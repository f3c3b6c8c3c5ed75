"""The newcomer's path, as the README tells it: `make run` on its embedded default (SQLite, the filesystem
broker), then `make testbed`, then `deploy --follow` of the testbed cluster.

Nothing here goes through pytest-django or the suite's PostgreSQL and Redis: a copy of the working tree
(sharing only .venv) is started by `make run` itself in a shell with none of the suite's variables, on a
free port, with its own web server, worker and beat. Everything the test checks is what a user would see:
the terminal, the pages, the commands' output.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from nodes.testbed import describe_missing, missing_packages
from tests.conftest import ROOT
from tests.testbed_plugin import _base36

pytestmark = [pytest.mark.full, pytest.mark.firstrun]

# A shell as a new user opens it: none of make test's DATABASE_URL, CELERY_BROKER_URL, SECRET_KEY...
CLEAN_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
             "LANG": "C.UTF-8", "TERM": "dumb"}
# Lines that must not reach the terminal while the console idles and deploys: one per task, per request.
NOISE = re.compile(r"Sending due task|Task \S+\[[0-9a-f-]+\] (received|succeeded)|\"GET /|\"POST /|"
                   r"No hostname was supplied")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _copy_tree(dest: Path) -> None:
    """The project's files as a clone has them (tracked and new, not ignored); .venv shared. Timestamps are
    kept so that make does not take the copied requirements files for newer than the installed venv."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if not src.is_file() or rel.startswith("var/"):
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    (dest / ".venv").symlink_to(ROOT / ".venv")


class Console:
    """`make run` in `home`, its terminal captured in a file."""

    def __init__(self, home: Path, port: int):
        self.home, self.port = home, port
        self.terminal = home / "terminal.txt"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        out = self.terminal.open("w")
        self.proc = subprocess.Popen(["make", "run"], cwd=self.home, env={**CLEAN_ENV, "PORT": str(self.port)},
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if f"http://127.0.0.1:{self.port}/" in self.text():
                return
            if self.proc.poll() is not None:
                pytest.fail(f"make run exited ({self.proc.returncode}):\n{self.text()}")
            time.sleep(0.2)
        pytest.fail(f"make run printed no URL in 120 s:\n{self.text()}")

    def text(self) -> str:
        return self.terminal.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)  # Ctrl-C, as the user stops it
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def manage(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([".venv/bin/python", "manage.py", *args], cwd=self.home, env=CLEAN_ENV,
                              capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def console(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the testbed needs root (network namespaces, bridges, mounts)")
    missing = missing_packages()
    if missing:
        pytest.skip(describe_missing(missing))
    home = tmp_path_factory.mktemp("firstrun")
    _copy_tree(home)
    c = Console(home, _free_port())
    c.prefix = f"fr{_base36(os.getpid())}"[:8]
    try:
        yield c
    finally:
        c.stop()
        subprocess.run([".venv/bin/python", "manage.py", "testbed", "down", "--prefix", c.prefix], cwd=home,
                       env=CLEAN_ENV, capture_output=True, timeout=120)
        shutil.rmtree(home, ignore_errors=True)


def _recap(out: str) -> dict[str, int]:
    lines = [ln for ln in out.splitlines() if ln.startswith("changed=")]
    assert lines, f"no recap line in:\n{out}"
    return {k: int(v) for k, v in (part.split("=") for part in lines[-1].split())}


def test_make_run_then_make_testbed_then_deploy_on_the_embedded_default(console):
    console.start()
    home = console.home
    assert (home / "var" / "console.sqlite3").exists()  # the embedded default, no database configured
    password = (home / "var" / "admin-password.txt").read_text().strip()
    assert password
    with urllib.request.urlopen(f"http://127.0.0.1:{console.port}/login/", timeout=10) as page:  # noqa: S310
        assert page.status == 200

    made = subprocess.run(["make", "testbed", f"TESTBED_PREFIX={console.prefix}"], cwd=home, env=CLEAN_ENV,
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stdout + made.stderr
    cluster = f"testbed-{console.prefix}"
    inventory = json.loads((home / "var" / "testbed-inventory.json").read_text())
    assert inventory["cluster"] == cluster and inventory["joget_admin_user"] == "admin"

    first = console.manage("deploy", cluster, "--follow")
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
    assert "went silent" not in first.stdout
    assert re.search(r"^== post_test on cluster: OK", first.stdout, re.M), first.stdout[-4000:]
    recap = _recap(first.stdout)
    assert recap["failed"] == recap["skipped"] == 0 and recap["changed"] > 0, recap

    # Joget runs: the system keys are read without the admin typing the stand-in's login anywhere.
    deadline = time.monotonic() + 60
    while True:
        keys = json.loads(console.manage("system_keys", cluster, "--format", "json").stdout)
        if len(keys) == 2 and all(k["system_key"] for k in keys) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert [k["node"] for k in keys] == ["app1", "app2"]
    assert all(re.fullmatch(r"(EE-)?[0-9A-Fa-f]{32,64}", k["system_key"]) for k in keys), keys
    assert keys[0]["system_key"] != keys[1]["system_key"]

    second = console.manage("deploy", cluster, "--follow")
    assert second.returncode == 0, second.stdout[-4000:]
    assert _recap(second.stdout)["changed"] == 0, second.stdout[-4000:]

    terminal = console.text()
    assert f"Started deployment #1 of {cluster}" in first.stdout
    assert f"Deployment #1 of {cluster} succeeded: changed=" in terminal  # told by the worker, in make run's terminal
    assert "var/admin-password.txt" in terminal
    noise = [ln for ln in terminal.splitlines() if NOISE.search(ln)]
    assert not noise, "the terminal shows routine lines:\n" + "\n".join(noise[:10])
