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
