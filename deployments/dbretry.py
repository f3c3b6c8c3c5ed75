"""Writes that outlast a restart of the console's own database.

A restart cuts every open connection, and Django reopens a broken one only
once it is closed, which it does between requests and between tasks. A step
holds its task for minutes, so the engine's writes close the dropped
connection and try again for a while rather than lose the step's end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection

T = TypeVar("T")

RETRY_FOR = 60.0  # a PostgreSQL restart takes seconds; give up well before the Redis visibility timeout


# SQLSTATEs of a server going away: admin shutdown (a restart), crash shutdown, "cannot connect now";
# and "too many connections" (53300), which frees up as other steps finish.
_SHUTDOWN = {"57P01", "57P02", "57P03", "53300"}


def is_disconnect(exc: Exception) -> bool:
    """The connection failed (cut, refused, server shutting down), not the statement on it."""
    if isinstance(exc, InterfaceError):
        return True
    code = getattr(exc.__cause__, "pgcode", None)  # None: libpq lost or never had the server
    return code is None or code.startswith("08") or code in _SHUTDOWN


def through_restart(fn: Callable[[], T], retry_for: float = RETRY_FOR) -> T:
    """`fn()`, reconnecting and trying again while the database is restarting.

    Only for writes that are safe to repeat, outside a transaction (a broken
    atomic block must be left by its owner, not retried inside).
    """
    deadline = time.monotonic() + retry_for
    delay = 0.1
    while True:
        try:
            return fn()
        except (OperationalError, InterfaceError) as exc:
            if connection.in_atomic_block or time.monotonic() >= deadline or not is_disconnect(exc):
                raise
            connection.close()
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
