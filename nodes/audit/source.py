"""Where a request came from, as the audit trail and the login lockouts record it."""

from __future__ import annotations

import ipaddress

from django.conf import settings


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
