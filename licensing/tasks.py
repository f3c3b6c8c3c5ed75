"""Thin Celery entry points: ids in, services out. License strings are read from the database by the
task, never passed as arguments, so they never sit in the broker."""

from celery import shared_task

from . import services
from .models import License


@shared_task
def read_key_task(license_id: int) -> None:
    try:
        services.read_key(license_id)
    except License.DoesNotExist:
        pass  # the node was removed after the read was queued


@shared_task
def activate_task(license_id: int) -> None:
    try:
        services.activate(license_id)
    except License.DoesNotExist:
        pass


@shared_task
def refresh_all_keys() -> int:
    """Periodic (CELERY_BEAT_SCHEDULE["license-keys"]): re-read every key so that drift shows."""
    return services.refresh_all()
