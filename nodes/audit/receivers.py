"""Logins, failed logins, lockouts and logouts, recorded from Django's (and django-axes') signals.

Connected by NodesConfig.ready; the events are written directly (no request.user yet at login).
"""

from __future__ import annotations

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from ..models import AuditEvent
from .source import client_ip

Action = AuditEvent.Action


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
