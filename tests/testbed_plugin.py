"""pytest fixtures for the testbed: simulated hosts lb, app1, app2, db (nodes/testbed).

Registered from tests/conftest.py (`pytest_plugins = ["tests.testbed_plugin"]`).

- `light_testbed`: hosts with sshd only. `full_testbed`: the same hosts, and the Debian packages
  (Tomcat, Apache, MariaDB) must be on this machine; it skips, saying which are missing, if not.
- Both are session-scoped and return a `RunningTestbed`: the inventory dict (docs/inventory.md)
  with helpers (`host_exec`, `ssh`, `ssh_run`, `node`, `address`, `stop_host`, `start_host`).
- Each uses its own prefix (`jtl`/`jtf` + the pid in base 36) so parallel sessions do not collide,
  cleans stale runs first, and always tears down: try/finally, plus atexit, plus SIGTERM/SIGHUP
  turned into KeyboardInterrupt so an interrupted session still runs its finalizers.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator

import pytest

from nodes.testbed import Testbed, TestbedError, describe_missing, down_all, missing_packages
from nodes.testbed.remote import connect, node_of, run

STALE_PREFIX = "jt"  # every test testbed's prefix starts with this; stale ones are removed at start


def pytest_configure(config):
    config.addinivalue_line("markers", "light: needs the light testbed (root; hosts with sshd only)")
    config.addinivalue_line("markers", "full: needs the full testbed (Tomcat, Apache, MariaDB packages installed)")


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def unique_prefix(kind: str) -> str:
    """`jt` + one letter for the kind + this process's pid in base 36: at most 8 characters."""
    return f"{STALE_PREFIX}{kind[:1]}{_base36(os.getpid())}"


class RunningTestbed(dict):
    """The inventory of a running testbed, plus helpers to act on its hosts."""

    def __init__(self, testbed: Testbed, inventory: dict):
        super().__init__(inventory)
        self.testbed = testbed
        self._clients: dict = {}

    @property
    def prefix(self) -> str:
        return self.testbed.prefix

    @property
    def state_dir(self):
        return self.testbed.state_dir

    def node(self, name: str) -> dict:
        return node_of(self, name)

    def address(self, name: str) -> str:
        return self.node(name)["address"]

    @property
    def app_servers(self) -> list[str]:
        return [n["name"] for n in self["nodes"] if "app_server" in n["roles"]]

    def host_exec(self, host: str, command: str | list[str], **kwargs) -> subprocess.CompletedProcess:
        """Run as root inside `host` without SSH (ip netns exec + nsenter); see Testbed.host_exec."""
        return self.testbed.host_exec(host, command, **kwargs)

    def ssh(self, host: str, **kwargs):
        """A new paramiko SSHClient on `host` (pinned host key, generated client key); close it yourself."""
        return connect(self, host, **kwargs)

    def ssh_run(self, host: str, command: str, timeout: float = 60.0) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) over SSH, on a connection kept open per host."""
        client = self._clients.get(host)
        if client is None or not client.get_transport() or not client.get_transport().is_active():
            client = self._clients[host] = connect(self, host)
        return run(client, command, timeout=timeout)

    def stop_host(self, host: str) -> None:
        """Power `host` off (its sshd is its PID 1, so stopping sshd stops the host)."""
        self._drop_client(host)
        self.testbed.stop_host(host)

    def start_host(self, host: str) -> None:
        """Boot `host` again, with its disk as it was."""
        self._drop_client(host)
        self.testbed.start_host(host)

    def _drop_client(self, host: str) -> None:
        client = self._clients.pop(host, None)
        if client:
            client.close()

    def close(self) -> None:
        for host in list(self._clients):
            self._drop_client(host)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def always_down(testbed: Testbed) -> Iterator[None]:
    """Take `testbed` down however the block ends: normally, by exception, Ctrl-C, SIGTERM, or interpreter exit."""
    done = []

    def cleanup():
        if not done:
            done.append(True)
            testbed.stop_signal_safe()

    atexit.register(cleanup)
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError):  # only the main thread may set handlers
            previous[sig] = signal.signal(sig, _interrupt)
    try:
        yield
    finally:
        cleanup()
        atexit.unregister(cleanup)
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError):
                signal.signal(sig, handler)


def _session_testbed(kind: str, full: bool | None = None, app_servers: int = 2,
                     spares: int = 0) -> Iterator[RunningTestbed]:
    """A testbed of its own for `kind` (its first letter goes into the prefix); full if kind is "full" or
    `full` says so; `app_servers` app servers app1..N (jvmRoute node01..); `spares` hosts spare1..N made like app
    servers but out of the cluster (the inventory's spare_nodes)."""
    if os.geteuid() != 0:
        pytest.skip("the testbed needs root (network namespaces, bridges, mounts)")
    full = kind == "full" if full is None else full
    if full:
        missing = missing_packages()
        if missing:
            pytest.skip(describe_missing(missing))
    # Runs of crashed sessions (their pid is gone) would hold addresses and namespaces: remove them.
    down_all(STALE_PREFIX, only_dead_owners=True)
    testbed = Testbed(unique_prefix(kind), app_servers=app_servers, full=full, spares=spares)
    with always_down(testbed):
        try:
            inventory = testbed.up(recreate=True)
        except TestbedError as exc:
            pytest.fail(f"testbed {testbed.prefix} did not come up: {exc}", pytrace=False)
        running = RunningTestbed(testbed, inventory)
        try:
            yield running
        finally:
            running.close()


@pytest.fixture(scope="session")
def light_testbed() -> Iterator[RunningTestbed]:
    """Hosts lb, app1, app2, db with sshd only; the inventory dict with helpers."""
    yield from _session_testbed("light")


@pytest.fixture(scope="session")
def full_testbed() -> Iterator[RunningTestbed]:
    """The same hosts; skips (naming the packages and the apt-get command) if Tomcat/Apache/MariaDB are missing."""
    yield from _session_testbed("full")


@pytest.fixture(scope="session")
def serving_testbed() -> Iterator[RunningTestbed]:
    """Full hosts the operation and backup modules each deploy and leave serving: one bring-up and one
    first deployment for all of them (each module's set-up deploys again, finding little to change)."""
    yield from _session_testbed("operations", full=True)
