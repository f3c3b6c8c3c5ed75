"""The audit trail: who did what, when, from where.

Views call `record(request, action, ...)` after the change they made; logins,
failed logins, lockouts and logouts are recorded here from Django's (and
django-axes') signals. Callers pass names and descriptions, never secrets:
no password, private key, passphrase or license text goes into `details`.
"""

from __future__ import annotations

import ipaddress

from axes.signals import user_locked_out
from django import forms
from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import models
from django.dispatch import receiver

from .models import AuditEvent, Cluster

Action = AuditEvent.Action


def client_ip(request) -> str | None:
    """The client's address: the TCP peer's, or, when that peer is one of TRUSTED_PROXIES, the
    nearest address in X-Forwarded-For that is not a trusted proxy.

    Read from the right: each proxy appends the address it got the request from, so only the
    entries our own proxies added are facts; anything further left was sent by the client and
    may be forged. Login lockouts key on this address, so a forged one must never be taken.
    """
    peer = request.META.get("REMOTE_ADDR") or None
    trusted = settings.TRUSTED_PROXIES
    if not trusted or not _in(peer, trusted):
        return peer
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for hop in reversed(hops):
        if not _in(hop, trusted):
            return hop if _is_ip(hop) else peer  # garbage in the header: the proxy is all we know
    return peer


def _is_ip(text: str | None) -> bool:
    try:
        ipaddress.ip_address(text or "")
    except ValueError:
        return False
    return True


def _in(address: str | None, networks) -> bool:
    if not _is_ip(address):
        return False
    ip = ipaddress.ip_address(address)
    return any(ip in net for net in networks)


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


# -- logins -------------------------------------------------------------------------------------------

@receiver(user_logged_in, dispatch_uid="audit_login")
def _logged_in(sender, request, user, **kwargs):
    # request.user is still the anonymous user while this signal runs: name the user directly.
    AuditEvent.objects.create(actor=user, username=user.get_username()[:150], action=Action.LOGIN,
                              source_ip=client_ip(request) if request is not None else None)


@receiver(user_logged_out, dispatch_uid="audit_logout")
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        AuditEvent.objects.create(actor=user, username=user.get_username()[:150], action=Action.LOGOUT,
                                  source_ip=client_ip(request) if request is not None else None)


@receiver(user_login_failed, dispatch_uid="audit_login_failed")
def _login_failed(sender, credentials, request=None, **kwargs):
    # An attempt refused because the pair is already locked out (axes counted nothing: its
    # failure count stays None) is recorded as a lockout (below), not a second time as a failure.
    if (request is not None and getattr(request, "axes_locked_out", False)
            and getattr(request, "axes_failures_since_start", None) is None):
        return
    AuditEvent.objects.create(
        username=str(credentials.get("username", ""))[:150], action=Action.LOGIN_FAILED,
        details="wrong user name or password",
        source_ip=client_ip(request) if request is not None else None,
    )


@receiver(user_locked_out, dispatch_uid="audit_locked_out")
def _locked_out(sender, request, username, ip_address, **kwargs):
    AuditEvent.objects.create(
        username=str(username or "")[:150], action=Action.LOGIN_LOCKED_OUT,
        details="too many failed logins for this user name from this address; refused until the cool-off ends",
        source_ip=ip_address or None,
    )
