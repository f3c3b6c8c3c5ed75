"""Finding and ending the processes of a testbed by network namespace, so a crashed run can be cleaned."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return ""


def is_alive(pid: int | None) -> bool:
    """Running (a zombie has ended: only its parent's wait() is missing)."""
    if not pid:
        return False
    stat = _read(f"/proc/{pid}/stat")
    # Field 3, after the command name in parentheses (which may itself hold spaces or parentheses).
    return bool(stat) and stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def net_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def pids_in_netns(inodes: Iterable[int]) -> list[int]:
    """Every live process whose network namespace is one of `inodes` (what `ip netns pids` does)."""
    wanted = set(inodes)
    if not wanted:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and net_inode(int(entry)) in wanted and is_alive(int(entry)):
            found.append(int(entry))
    return found


def is_namespace_init(pid: int) -> bool:
    """PID 1 of a child PID namespace: its NSpid line ends in 1 (e.g. `NSpid: 4242 1`)."""
    for line in _read(f"/proc/{pid}/status").splitlines():
        if line.startswith("NSpid:"):
            ids = line.split()[1:]
            return len(ids) > 1 and ids[-1] == "1"
    return False


def children(pid: int) -> list[int]:
    text = _read(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in text.split()]


def cmdline(pid: int) -> list[str]:
    return [a for a in _read(f"/proc/{pid}/cmdline").split("\0") if a]


def send(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def reap(pids: Iterable[int]) -> None:
    """Collect the exit status of those that are our children, so none lingers as a zombie."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until all have ended; returns those still alive at the deadline."""
    pending = list(pids)
    deadline = time.monotonic() + timeout
    while pending:
        reap(pending)
        pending = [p for p in pending if is_alive(p)]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    return pending


def terminate(inits: list[int], others: list[int], timeout: float = 3.0) -> list[int]:
    """SIGTERM each host's PID 1 (the kernel then ends its whole PID namespace), SIGKILL what is left."""
    send(inits, signal.SIGTERM)
    left = wait_gone(inits + others, timeout)
    if left:
        send(left, signal.SIGKILL)
        left = wait_gone(left, timeout)
    return left
