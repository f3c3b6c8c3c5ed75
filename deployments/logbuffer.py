"""Live logs: lines are buffered in memory and bulk-written every ~50 ms.

One flusher thread per worker process writes the lines of every step running in it, in one
transaction per tick; it also refreshes the steps' heartbeats (so the sweeper knows the worker is
alive) and watches for cancel requests. One thread and one database connection for all steps,
rather than one per step: at 64 steps at once, per-step threads doubled the connections a worker
holds (past PostgreSQL's default limit) and contended for the interpreter with the SSH threads.
Secrets are masked before a line is buffered, so they never reach the database.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from django.db import InterfaceError, OperationalError, close_old_connections, connection, transaction
from django.db.models import Case, IntegerField, Value, When
from django.utils import timezone

from nodes.secrets import masker

from .dbretry import through_restart
from .models import Deployment, LogLine, StepRun

FLUSH_INTERVAL = 0.05
HEARTBEAT_INTERVAL = 2.0
CANCEL_INTERVAL = 0.25
IDLE_CLOSE = 5.0  # seconds without a running step before the flusher lets its connection go
MAX_LINE = 8000

log = logging.getLogger(__name__)


class LogBuffer:
    """One step run's lines on their way to the database (written by the process's flusher)."""

    def __init__(self, run: StepRun, secrets: Iterable[str] = (), on_cancel: Callable[[], None] | None = None):
        self.run_id = run.pk
        self.deployment_id = run.deployment_id
        self.seq = run.last_seq
        self.mask = masker(secrets)
        self.on_cancel = on_cancel
        self.cancelled = False
        self._pending: list[LogLine] = []
        self._lock = threading.Lock()  # guards _pending and seq
        # Held while a batch of this buffer is being written: the step's last flush waits for the
        # flusher's, so the step is never marked finished before all its lines are stored.
        self.writing = threading.Lock()
        self.tail: list[str] = []

    def __enter__(self):
        flusher.add(self)
        return self

    def __exit__(self, *exc):
        flusher.remove(self)
        through_restart(self.flush)

    def emit(self, stream: str, text: str) -> None:
        text = self.mask(text.rstrip("\r"))[:MAX_LINE]
        with self._lock:
            self.seq += 1
            self._pending.append(LogLine(run_id=self.run_id, seq=self.seq, stream=stream, text=text,
                                         time=timezone.now()))
            self.tail = (self.tail + [text])[-20:]

    def info(self, text: str) -> None:
        self.emit("info", text)

    def take(self) -> tuple[list[LogLine], int]:
        with self._lock:
            batch, self._pending = self._pending, []
            return batch, self.seq

    def give_back(self, batch: list[LogLine]) -> None:
        """A write failed (the database restarted): keep the lines, in order, for the next one."""
        with self._lock:
            self._pending = batch + self._pending

    def flush(self) -> None:
        """Write this buffer's lines now (the step's own last flush)."""
        with self.writing:
            write_batches([self])


def write_batches(buffers: list[LogBuffer]) -> None:
    """Lines of `buffers` and their runs' last_seq together, in one transaction: a retry never doubles a line.
    The caller holds each buffer's `writing` lock."""
    taken = [(buf, *buf.take()) for buf in buffers]
    taken = [(buf, batch, last) for buf, batch, last in taken if batch]
    if not taken:
        return
    try:
        with transaction.atomic():
            LogLine.objects.bulk_create([line for _, batch, _ in taken for line in batch])
            StepRun.objects.filter(pk__in=[buf.run_id for buf, _, _ in taken]).update(
                heartbeat=timezone.now(),
                last_seq=Case(*(When(pk=buf.run_id, then=Value(last)) for buf, _, last in taken),
                              output_field=IntegerField()),
            )
    except (OperationalError, InterfaceError):
        for buf, batch, _ in taken:
            buf.give_back(batch)
        raise


class Flusher:
    """The worker process's one log-writing thread, started with the first step and kept while steps run."""

    def __init__(self):
        self._buffers: dict[int, LogBuffer] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, buf: LogBuffer) -> None:
        with self._lock:
            self._buffers[id(buf)] = buf
            # Not alive after a fork (prefork pool) or if it ever ended: start one for this process.
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="log-flusher", daemon=True)
                self._thread.start()

    def remove(self, buf: LogBuffer) -> None:
        with self._lock:
            self._buffers.pop(id(buf), None)

    def _active(self) -> list[LogBuffer]:
        with self._lock:
            return list(self._buffers.values())

    def _loop(self) -> None:
        beat = cancel_check = idle_since = time.monotonic()
        while True:
            time.sleep(FLUSH_INTERVAL)
            buffers = self._active()
            now = time.monotonic()
            if not buffers:
                if now - idle_since > IDLE_CLOSE:
                    connection.close()  # no step runs here now: give the connection back
                    close_old_connections()
                    idle_since = now
                continue
            idle_since = now
            try:
                self._flush(buffers)
                if now - beat >= HEARTBEAT_INTERVAL:
                    StepRun.objects.filter(pk__in=[b.run_id for b in buffers]).update(heartbeat=timezone.now())
                    beat = now
                if now - cancel_check >= CANCEL_INTERVAL:
                    cancel_check = now
                    self._check_cancel(buffers)
            except (OperationalError, InterfaceError):
                # The database restarted under this thread: the lines wait in memory, and closing the dead
                # connection lets the next tick open a new one.
                connection.close()
            except Exception:  # noqa: BLE001 - the flusher must outlive any one bad tick
                log.exception("log flusher tick failed")

    @staticmethod
    def _flush(buffers: list[LogBuffer]) -> None:
        held = [b for b in buffers if b.writing.acquire(blocking=False)]  # a step flushing itself: next tick
        try:
            write_batches(held)
        finally:
            for b in held:
                b.writing.release()

    @staticmethod
    def _check_cancel(buffers: list[LogBuffer]) -> None:
        waiting = [b for b in buffers if not b.cancelled]
        if not waiting:
            return
        cancelled = set(Deployment.objects.filter(pk__in={b.deployment_id for b in waiting}, cancel_requested=True)
                        .values_list("pk", flat=True))
        for b in waiting:
            if b.deployment_id in cancelled:
                b.cancelled = True
                if b.on_cancel:
                    # Killing the remote command takes an SSH round trip: not on the flusher's time.
                    threading.Thread(target=b.on_cancel, name=f"cancel-{b.run_id}", daemon=True).start()


flusher = Flusher()
