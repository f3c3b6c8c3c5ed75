"""Large data through an SSH channel, never whole in memory: a backup's dump read from a command's stdout,
a restore's archive written to a command's stdin.

Fabric's run() keeps all output in memory and feeds stdin a byte per 10 ms, so these open a paramiko
session of their own on the connection's transport (the pinned, logged-in one: `NodeConnection` stays
the one SSH door; `NodeConnection.stream` / `.feed` call these).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import paramiko
from django.conf import settings

from .ssh import ConnectFailed, LineWriter, Result, quote

if TYPE_CHECKING:
    from .ssh import NodeConnection

CHUNK = 256 * 1024
STDERR_KEPT = 16  # chunks of stderr kept for the Result: a chatty command must not fill the worker's memory


def _session(conn: NodeConnection, command: str, timeout: float | None):
    if conn._conn is None:
        conn.open()
    if not conn.is_root:
        command = f"sudo -n sh -c {quote(command)}"
    try:
        chan = conn._conn.client.get_transport().open_session()
        chan.settimeout(timeout or settings.SSH_COMMAND_TIMEOUT)
        chan.exec_command(command)
    except (paramiko.SSHException, OSError, EOFError, AttributeError) as exc:
        raise ConnectFailed(f"{conn.target.label}: could not open a session: {exc}.") from None
    return chan


class _Stderr:
    def __init__(self, emit):
        self.writer = LineWriter(emit, "stderr") if emit else None
        self.tail: list[bytes] = []

    def take(self, data: bytes) -> None:
        self.tail.append(data)
        del self.tail[:-STDERR_KEPT]
        if self.writer is not None:
            self.writer.write(data.decode("utf-8", "replace"))

    def drain(self, chan) -> None:
        while chan.recv_stderr_ready():
            data = chan.recv_stderr(65536)
            if not data:
                return
            self.take(data)

    @property
    def text(self) -> str:
        return b"".join(self.tail).decode("utf-8", "replace")


def _finish(conn: NodeConnection, chan, err: _Stderr) -> Result:
    while True:  # stderr until the command closes it
        data = chan.recv_stderr(65536)
        if not data:
            break
        err.take(data)
    if err.writer is not None:
        err.writer.flush()
    code = chan.recv_exit_status()
    chan.close()
    if code == -1 and conn._dropped():
        raise ConnectFailed(f"{conn.target.label}: connection lost while a stream ran; what it did is unknown.")
    return Result(code, "", err.text)


def stream(conn: NodeConnection, command: str, sink: Callable[[bytes], object], *, timeout: float | None = None,
           emit: Callable[[str, str], None] | None = None) -> Result:
    """Run `command` and hand its stdout to `sink(chunk)` as it arrives (chunks of up to 256 KB); stderr
    lines go to `emit(stream, line)`. The Result's stdout is empty, its stderr the end of stderr."""
    chan = _session(conn, command, timeout)
    err = _Stderr(emit)
    try:
        while True:
            data = chan.recv(CHUNK)
            if not data:
                break
            sink(data)
            err.drain(chan)
        return _finish(conn, chan, err)
    except TimeoutError:
        chan.close()
        return Result(124, "", err.text, timed_out=True)
    except (paramiko.SSHException, OSError, EOFError) as exc:
        chan.close()
        raise ConnectFailed(f"{conn.target.label}: connection lost during a stream: {exc}.") from None


def feed(conn: NodeConnection, command: str, source, *, timeout: float | None = None,
         emit: Callable[[str, str], None] | None = None) -> Result:
    """Run `command` with the binary file object `source` as its stdin, read in chunks of 256 KB; its
    output (stdout and stderr, as lines) goes to `emit`."""
    chan = _session(conn, command, timeout)
    out = LineWriter(emit, "stdout") if emit else None
    err = _Stderr(emit)

    def drain_stdout(block: bool) -> None:
        while block or chan.recv_ready():
            data = chan.recv(65536)
            if not data:
                return
            if out is not None:
                out.write(data.decode("utf-8", "replace"))

    try:
        while True:
            chunk = source.read(CHUNK)
            if not chunk:
                break
            chan.sendall(chunk)
            # Read what the command says as it goes: a full output window would stop it, and then our send.
            drain_stdout(False)
            err.drain(chan)
        chan.shutdown_write()
        drain_stdout(True)
        if out is not None:
            out.flush()
        return _finish(conn, chan, err)
    except TimeoutError:
        chan.close()
        return Result(124, "", err.text, timed_out=True)
    except (paramiko.SSHException, OSError, EOFError) as exc:
        chan.close()
        raise ConnectFailed(f"{conn.target.label}: connection lost during a stream: {exc}.") from None
