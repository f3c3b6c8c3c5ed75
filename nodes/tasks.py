"""Thin Celery entry points: take ids, call a service."""

from celery import shared_task

from . import health, services


@shared_task
def fetch_host_key(node_id: int) -> None:
    services.record_offered_host_key(node_id)


@shared_task
def probe_node(node_id: int) -> None:
    services.probe_node(node_id)


# ---- node health ---------------------------------------------------------------------------------------------


@shared_task
def run_health_checks() -> int:
    """Beat's tick: one check task per cluster, so clusters run side by side on the workers."""
    ids = health.cluster_ids()
    for cluster_id in ids:
        check_cluster.apply_async((cluster_id,), expires=health.setting("HEALTH_CHECK_INTERVAL"))
    return len(ids)


@shared_task
def check_cluster(cluster_id: int) -> None:
    health.run_cycle(cluster_id)


@shared_task
def prune_health() -> int:
    return health.prune()


@shared_task
def fetch_catalina_tail(tail_id: int) -> None:
    health.fetch_catalina_tail(tail_id)
