"""Live logs: lines are buffered in memory and bulk-written every ~50 ms.

A background thread flushes, refreshes the step's heartbeat (so the sweeper
knows the worker is alive) and watches for a cancel request. Secrets are masked
before a line is buffered, so they never reach the database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from django.db import InterfaceError, OperationalError, close_old_connections, connection, transaction
from django.utils import timezone

from .dbretry import through_restart
from .models import Deployment, LogLine, StepRun

FLUSH_INTERVAL = 0.05
HEARTBEAT_INTERVAL = 2.0
MAX_LINE = 8000


def masker(secrets: Iterable[str]) -> Callable[[str], str]:
    # Longest first, so a secret that contains another is masked whole.
    values = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)

    def mask(text: str) -> str:
        for value in values:
            if value in text:
                text = text.replace(value, "********")
        return text

    return mask


class LogBuffer:
    def __init__(self, run: StepRun, secrets: Iterable[str] = (), on_cancel: Callable[[], None] | None = None):
        self.run_id = run.pk
        self.deployment_id = run.deployment_id
        self.seq = run.last_seq
        self.mask = masker(secrets)
        self.on_cancel = on_cancel
        self.cancelled = False
        self._pending: list[LogLine] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"log-{run.pk}", daemon=True)
        self.tail: list[str] = []

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
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

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            last = self.seq
        if not batch:
            return
        try:
            with transaction.atomic():  # lines and last_seq together, so a retry never doubles a line
                LogLine.objects.bulk_create(batch)
                StepRun.objects.filter(pk=self.run_id).update(last_seq=last, heartbeat=timezone.now())
        except (OperationalError, InterfaceError):
            # The database dropped the connection (a restart): keep the lines, in order, for the next flush.
            with self._lock:
                self._pending = batch + self._pending
            raise

    def _loop(self) -> None:
        beat = cancel_check = time.monotonic()
        try:
            while not self._stop.wait(FLUSH_INTERVAL):
                try:
                    self.flush()
                    now = time.monotonic()
                    if now - beat >= HEARTBEAT_INTERVAL:
                        StepRun.objects.filter(pk=self.run_id).update(heartbeat=timezone.now())
                        beat = now
                    if now - cancel_check >= 0.25 and not self.cancelled:
                        cancel_check = now
                        if Deployment.objects.filter(pk=self.deployment_id, cancel_requested=True).exists():
                            self.cancelled = True
                            if self.on_cancel:
                                self.on_cancel()
                except (OperationalError, InterfaceError):
                    # The database restarted under this thread: the lines wait in memory, and closing
                    # the dead connection lets the next tick open a new one.
                    connection.close()
        finally:
            # This thread has its own database connection: close it.
            connection.close()
            close_old_connections()
