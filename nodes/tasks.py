"""Thin Celery entry points: take ids, call a service."""

from celery import shared_task

from . import services


@shared_task
def fetch_host_key(node_id: int) -> None:
    services.record_offered_host_key(node_id)


@shared_task
def probe_node(node_id: int) -> None:
    services.probe_node(node_id)
