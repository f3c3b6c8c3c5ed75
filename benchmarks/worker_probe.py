"""Timing probes inside the Celery worker, for the deployment benchmark only.

Loaded by `celery worker --include benchmarks.worker_probe` when BENCH_TRACE names a file. It wraps,
without changing them, the engine's `_execute` (one step run) and `advance`, the SSH connection's `open`
and `run`, the SFTP upload, and the database work of the thread that runs a step, and appends one JSON
line per step run and per `advance` to BENCH_TRACE. Times are self times: a connection opened inside
`run` counts as connect, not as remote work.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
import time

TRACE = os.environ.get("BENCH_TRACE", "")
_local = threading.local()
_write_lock = threading.Lock()


def _write(record: dict) -> None:
    with _write_lock, open(TRACE, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def _enter() -> None:
    if getattr(_local, "stack", None) is None:
        _local.stack = []
    _local.stack.append(0.0)


def _leave(kind: str, total: float) -> None:
    inner = _local.stack.pop()
    if _local.stack:
        _local.stack[-1] += total
    rec = getattr(_local, "rec", None)
    if rec is not None:
        rec[kind] = rec.get(kind, 0.0) + total - inner
        rec[f"{kind}_n"] = rec.get(f"{kind}_n", 0) + 1


def timed(kind: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _enter()
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _leave(kind, time.perf_counter() - t0)

    return wrapper


def _query_kind(sql: str) -> str:
    """A short name for what a query does (verb and first table), to see which ones the time goes to."""
    verb = sql.split(None, 1)[0].upper() if sql else "?"
    table = re.search(r'(?:FROM|UPDATE|INTO)\s+"(\w+)"', sql)
    return f"{verb} {table.group(1) if table else '?'}{' FOR UPDATE' if 'FOR UPDATE' in sql else ''}"


def _db_wrapper(execute, sql, params, many, context):
    _enter()
    t0 = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        elapsed = time.perf_counter() - t0
        _leave("db", elapsed)
        rec = getattr(_local, "rec", None)
        if rec is not None:
            queries = rec.setdefault("queries", {})
            kind = _query_kind(sql)
            queries[kind] = queries.get(kind, 0.0) + elapsed


def install() -> None:
    import django

    django.setup()
    from django.db import connection
    from django.db.backends.postgresql.base import DatabaseWrapper

    from deployments import engine
    from nodes import ssh

    ssh.NodeConnection.open = timed("connect", ssh.NodeConnection.open)
    ssh.NodeConnection.run = timed("remote", ssh.NodeConnection.run)
    ssh.NodeConnection._stage = timed("sftp", ssh.NodeConnection._stage)
    DatabaseWrapper.get_new_connection = timed("db_connect", DatabaseWrapper.get_new_connection)

    original_execute, original_advance = engine._execute, engine.advance

    def execute(run, *args):
        rec = {"run": run.pk, "start": time.time()}
        _local.rec, _local.stack = rec, []
        t0 = time.perf_counter()
        try:
            with connection.execute_wrapper(_db_wrapper):
                return original_execute(run, *args)
        finally:
            rec["wall"] = time.perf_counter() - t0
            rec["end"] = time.time()
            _local.rec = None
            _write(rec)

    def advance(deployment_id):
        rec = {"advance": deployment_id, "start": time.time()}
        _local.rec, _local.stack = rec, []
        t0 = time.perf_counter()
        try:
            with connection.execute_wrapper(_db_wrapper):
                return original_advance(deployment_id)
        finally:
            rec["wall"] = time.perf_counter() - t0
            _local.rec = None
            _write(rec)

    engine._execute, engine.advance = execute, advance


if TRACE:
    install()
