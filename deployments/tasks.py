"""Thin Celery entry points: ids in, engine calls out."""

from celery import shared_task

from . import engine


@shared_task
def advance_deployment(deployment_id: int) -> None:
    engine.advance(deployment_id)


# acks_late is safe only because run_step claims its row first: a redelivered
# message finds the row no longer "queued" and does nothing.
@shared_task(acks_late=True, reject_on_worker_lost=False)
def run_step(run_id: int) -> None:
    engine.run_step(run_id)


@shared_task(acks_late=True, reject_on_worker_lost=False)
def run_steps(run_ids: list[int]) -> None:
    engine.run_steps(run_ids)


@shared_task
def sweep_steps() -> int:
    return engine.sweep()


@shared_task
def run_check(result_id: int) -> None:
    from . import checklist

    checklist.run_one(result_id)


@shared_task
def backups_and_drift() -> None:
    """Every minute (beat): scheduled backups with their retention, drift checks, events of finished checks."""
    from . import drift

    drift.periodic()


@shared_task
def read_joget_records(cluster_id: int) -> None:
    """What Joget records about a cluster (servers.json, wf_setup, builds), read for the cluster page."""
    from nodes.models import Cluster

    from . import joget_state

    try:
        joget_state.run_read(cluster_id)
    except Cluster.DoesNotExist:
        pass  # the cluster was removed after the read was queued


@shared_task
def remove_stale_server(cluster_id: int, name: str, username: str) -> None:
    from nodes.models import Cluster

    from . import joget_state

    try:
        joget_state.run_remove(cluster_id, name, username)
    except Cluster.DoesNotExist:
        pass
