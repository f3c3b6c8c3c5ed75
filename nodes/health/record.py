"""Writing a cycle down (samples, latest numbers, states and events on change) and pruning old rows."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from ..models import CatalinaTail, CheckState, Cluster, HealthEvent, HealthSample, HealthState, Node, NodeHealth
from .base import setting
from .evaluate import NUMBER_FIELDS, by_node
from .jobs import ClusterJob


@transaction.atomic
def record(job: ClusterJob, now: datetime, results, rows: dict[int, dict]) -> list[HealthEvent]:
    """Samples and latest numbers of every node; states and events only where something changed."""
    # A node removed while the cycle ran: drop what was measured on it rather than fail the whole cycle.
    alive = set(Node.objects.filter(cluster_id=job.id).values_list("pk", flat=True))
    rows = {nid: r for nid, r in rows.items() if nid in alive}
    results = {k: r for k, r in results.items() if k[0] is None or k[0] in alive}
    HealthSample.objects.bulk_create([HealthSample(node_id=nid, time=now, **r) for nid, r in rows.items()])
    grouped = by_node(results)
    details = {nid: {k: [r.state, r.detail] for k, r in grouped.get(nid, {}).items()} for nid in rows}
    NodeHealth.objects.bulk_create(
        [NodeHealth(node_id=nid, checked_at=now, details=details[nid], **r) for nid, r in rows.items()],
        update_conflicts=True, unique_fields=["node"], update_fields=["checked_at", "details", *NUMBER_FIELDS],
    )
    return _record_states(job, now, results)


def _record_states(job: ClusterJob, now: datetime, results) -> list[HealthEvent]:
    current = {(s.node_id, s.key): s for s in CheckState.objects.filter(cluster_id=job.id)}
    changed, created, events = [], [], []
    for (nid, key), result in results.items():
        detail = result.detail[:500]
        old = current.pop((nid, key), None)
        if old is None:
            created.append(CheckState(cluster_id=job.id, node_id=nid, key=key, state=result.state, since=now,
                                      detail=detail))
            if result.state != HealthState.OK:  # a first look that finds trouble is news; a first "ok" is not
                events.append(HealthEvent(cluster_id=job.id, node_id=nid, key=key, time=now, old_state="",
                                          new_state=result.state, detail=detail))
        elif old.state != result.state:
            events.append(HealthEvent(cluster_id=job.id, node_id=nid, key=key, time=now, old_state=old.state,
                                      new_state=result.state, detail=detail))
            old.state, old.since, old.detail = result.state, now, detail
            changed.append(old)
    CheckState.objects.bulk_create(created)
    CheckState.objects.bulk_update(changed, ["state", "since", "detail"], batch_size=200)
    if current:  # checks that no longer apply (a role or a layer was removed)
        CheckState.objects.filter(pk__in=[s.pk for s in current.values()]).delete()
    return HealthEvent.objects.bulk_create(events)


def prune(now: datetime | None = None) -> int:
    """Drop samples and events older than HEALTH_RETENTION_DAYS, one node's range at a time (the primary
    key's index), so no statement scans or locks the whole table."""
    cutoff = (now or timezone.now()) - timedelta(days=setting("HEALTH_RETENTION_DAYS"))
    removed = 0
    for node_id in Node.objects.values_list("pk", flat=True):
        removed += HealthSample.objects.filter(node_id=node_id, time__lt=cutoff).delete()[0]
    for cid in Cluster.objects.values_list("pk", flat=True):
        HealthEvent.objects.filter(cluster_id=cid, time__lt=cutoff).delete()
    CatalinaTail.objects.filter(requested_at__lt=(now or timezone.now()) - timedelta(days=1)).delete()
    return removed
