"""Health changes by e-mail and webhook; a failure to send is logged, never raised."""

from __future__ import annotations

import http.client
import json
import logging
import urllib.request

from django.core.mail import send_mail

from ..models import HealthEvent, HealthState
from .base import CHECKS, setting

log = logging.getLogger(__name__)


def worth_notifying(event: HealthEvent) -> bool:
    """Unknown follows from another failure that has its own event; unknown -> ok is its recovery's echo."""
    if event.new_state == HealthState.UNKNOWN:
        return False
    return not (event.old_state == HealthState.UNKNOWN and event.new_state == HealthState.OK)


def event_line(event: HealthEvent, names: dict) -> str:
    where = names.get(event.node_id, "cluster")
    old = event.old_state or "new"
    return f"{where} {CHECKS.get(event.key, event.key)}: {old} -> {event.new_state}: {event.detail}"


def notify(cluster_name: str, events: list[HealthEvent], names: dict) -> None:
    events = [e for e in events if worth_notifying(e)]
    if not events:
        return
    _send_email(cluster_name, events, names)
    _post_webhook(cluster_name, events, names)


def _send_email(cluster_name: str, events, names) -> None:
    recipients = setting("HEALTH_ALERT_EMAIL")
    if not recipients:
        return
    bad = sum(1 for e in events if e.new_state == HealthState.BAD)
    subject = f"[{cluster_name}] {len(events)} health change(s), {bad} failing: {event_line(events[0], names)}"
    body = "\n".join(f"{e.time:%Y-%m-%d %H:%M:%S %Z}  {event_line(e, names)}" for e in events)
    try:
        send_mail(subject[:200], body, None, list(recipients))
    except Exception:  # noqa: BLE001 - any mail failure (DNS, SMTP, auth) is logged, never raised
        log.exception("health e-mail to %s failed", ", ".join(recipients))


def webhook_payload(cluster_name: str, events, names) -> dict:
    return {
        "cluster": cluster_name,
        "events": [{"node": names.get(e.node_id), "check": e.key, "label": CHECKS.get(e.key, e.key),
                    "from": e.old_state or None, "to": e.new_state, "detail": e.detail, "time": e.time.isoformat()}
                   for e in events],
    }


def _post_webhook(cluster_name: str, events, names) -> None:
    url = setting("HEALTH_WEBHOOK_URL")
    if not url:
        return
    if not url.startswith(("http://", "https://")):
        log.warning("health webhook %r is not an http(s) URL: not sent", url)
        return
    data = json.dumps(webhook_payload(cluster_name, events, names)).encode()
    req = urllib.request.Request(url, data=data, method="POST",  # noqa: S310 - scheme checked above
                                 headers={"Content-Type": "application/json", "User-Agent": "joget-console"})
    try:
        with urllib.request.urlopen(req, timeout=setting("HEALTH_WEBHOOK_TIMEOUT")) as resp:  # noqa: S310
            resp.read(1024)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        log.warning("health webhook %s failed: %s", url, exc)
