"""One check cycle of a cluster: its lease, the probes run side by side, then evaluate, record, notify."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from ..models import Cluster, HealthEvent, HealthRun, Node
from .base import setting
from .evaluate import Observed, evaluate, numbers
from .gather import Gathered, gather, gather_script
from .jobs import ClusterJob, snapshot
from .notify import notify
from .probes import Manager, Probe, fetch_balancer_manager, mysql_ping, probe_joget
from .record import record

log = logging.getLogger(__name__)


def _guard(fn, *args):
    """A job that raised unexpectedly gives an 'internal' result instead of losing the whole cycle."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - one broken node must not stop the cycle
        log.exception("health job %s failed", getattr(fn, "__name__", fn))
        if fn is gather:
            return Gathered(error=f"internal error: {exc}", kind="internal")
        return Probe(False, detail=f"internal error: {exc}")


def probe_all(job: ClusterJob) -> Observed:
    out = Observed()
    cluster_level: dict = {}
    futures = []
    lb_node = job.lb["node_id"] if job.lb else None
    db_node = job.db["node_id"] if job.db else None
    threads = max(1, min(setting("HEALTH_CHECK_THREADS"), 3 * len(job.nodes) + 2))
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="health") as pool:
        def submit(store, key, fn, *args):
            futures.append((store, key, pool.submit(_guard, fn, *args)))

        for node in job.nodes:
            script = gather_script(node, job.wflow_home, node.id == db_node, node.id == lb_node)
            submit(out.gathered, node.id, gather, node.target, script, node.catalina_base)
            if node.is_app:
                submit(out.http, node.id, probe_joget, node.address, node.http_port, job.context_path)
                if job.lb and node.jvm_route:
                    cookie = {"Cookie": f"{job.lb['sticky_cookie']}=jcc-health.{node.jvm_route}"}
                    submit(out.via_lb, node.id, probe_joget, job.lb["address"], job.lb["port"], job.context_path,
                           cookie)
        if job.lb:
            submit(cluster_level, "lb", probe_joget, job.lb["address"], job.lb["port"], job.context_path)
        if job.db:
            d = job.db
            submit(cluster_level, "db", mysql_ping, d["host"], d["port"], d["user"], d["password"], d["name"])
        for store, key, future in futures:
            store[key] = future.result()
    out.lb_probe, out.db_probe = cluster_level.get("lb"), cluster_level.get("db")
    if job.lb:
        # After the probes: Apache marks a member Err only when a request to it failed.
        out.manager = _guard(fetch_balancer_manager, job.lb)
        if isinstance(out.manager, Probe):
            out.manager = Manager(error=out.manager.detail)
    return out


def claim(cluster_id: int, now: datetime) -> bool:
    """Take the cluster's lease; a cycle whose worker died frees it by expiry."""
    ttl = timedelta(seconds=max(60.0, 4 * setting("HEALTH_CHECK_INTERVAL")))
    HealthRun.objects.get_or_create(cluster_id=cluster_id)
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    return HealthRun.objects.filter(free, cluster_id=cluster_id).update(lease_until=now + ttl, started=now) == 1


@dataclass
class CycleReport:
    cluster: str
    nodes: int
    seconds: float
    events: list[HealthEvent]
    results: dict


def run_cycle(cluster_id: int) -> CycleReport | None:
    """One check cycle of one cluster; None when another cycle of it holds the lease."""
    now = timezone.now()
    if not Cluster.objects.filter(pk=cluster_id).exists():
        return None  # removed since the tick was queued
    if not claim(cluster_id, now):
        log.info("health cycle of cluster %s skipped: the previous one is still running", cluster_id)
        return None
    t0 = time.monotonic()
    error = ""
    try:
        cluster = Cluster.objects.get(pk=cluster_id)
        job = snapshot(cluster)
        out = probe_all(job)
        results = evaluate(job, out)
        events = record(job, now, results, numbers(job, out, results))
        notify(job.name, events, {n.id: n.name for n in job.nodes})
        return CycleReport(job.name, len(job.nodes), time.monotonic() - t0, events, results)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        HealthRun.objects.filter(cluster_id=cluster_id).update(
            lease_until=None, finished=timezone.now(), duration_ms=round((time.monotonic() - t0) * 1000),
            nodes=Node.objects.filter(cluster_id=cluster_id).count(), error=error)


def cluster_ids() -> list[int]:
    return list(Cluster.objects.filter(nodes__isnull=False).distinct().values_list("pk", flat=True))
