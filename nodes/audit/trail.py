"""Recording one event: who did what, to which target, from where. Views call `record` after their change."""

from __future__ import annotations

from django import forms
from django.db import models

from ..models import AuditEvent, Cluster
from .source import client_ip

Action = AuditEvent.Action


def _describe(obj) -> str:
    if isinstance(obj, models.Model):
        return f"{obj._meta.verbose_name} {obj}"
    return str(obj or "")


def _cluster_name(obj) -> str:
    if obj is None:
        return ""
    if isinstance(obj, Cluster):
        return obj.name
    if isinstance(obj, models.Model):
        cluster = getattr(obj, "cluster", None)
        return cluster.name if isinstance(cluster, Cluster) else ""
    return str(obj)


def record(request_or_user, action: str, *, target="", cluster=None, details: str = "",
           username: str | None = None) -> AuditEvent:
    """Append one event. `request_or_user` is the request (actor and source IP
    from it), a user, or None (the command line, a worker). `target` is a model
    instance or a description; `cluster` a Cluster, a name, or taken from target."""
    request = request_or_user if hasattr(request_or_user, "META") else None
    user = getattr(request, "user", None) if request is not None else request_or_user
    if user is not None and not user.is_authenticated:
        user = None
    if cluster is None and isinstance(target, models.Model):
        cluster = target
    # Set by the REST API's token authentication ("API token 'ci-deploy'"): which of the user's tokens acted.
    via = getattr(request, "audit_via", "") if request is not None else ""
    if via:
        details = f"{details} (via {via})" if details else f"via {via}"
    return AuditEvent.objects.create(
        actor=user,
        username=(username if username is not None else (user.get_username() if user else ""))[:150],
        action=action,
        cluster=_cluster_name(cluster)[:63],
        target=_describe(target)[:255],
        details=details,
        source_ip=client_ip(request) if request is not None else None,
    )


def changed_fields(form) -> str:
    """Which fields an edit changed, by name only: values could be secrets. A
    password field left empty keeps the stored value, so it did not change."""
    names = [n for n in form.changed_data
             if not (isinstance(form.fields[n].widget, forms.PasswordInput) and not form.data.get(form.add_prefix(n)))]
    return "changed: " + ", ".join(names) if names else "no field changed"


def record_host_key_mismatch(request, node, offered_fingerprint: str, pinned_fingerprint: str) -> None:
    """Once per fetched key: the host-key fragment is polled, the mismatch is one event."""
    details = f"pinned {pinned_fingerprint}, offered {offered_fingerprint}"
    seen = AuditEvent.objects.filter(action=Action.HOST_KEY_MISMATCH, target=_describe(node)[:255],
                                     cluster=node.cluster.name, details=details)
    if node.offered_host_key_at:
        seen = seen.filter(time__gte=node.offered_host_key_at)
    if not seen.exists():
        record(request, Action.HOST_KEY_MISMATCH, target=node, details=details)
