"""API tokens: made by `manage.py api_token`, sent as `Authorization: Bearer <token>`.

A token reads `jcc_<key id>_<secret>`: the prefix makes a leaked one easy to recognise (secret scanners,
logs), the key id finds its row, and only the SHA-256 of the whole token is stored, compared in constant
time. The token itself is shown once and never stored or logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, throttling

from deployments.models import ApiToken
from nodes import audit

PREFIX = "jcc_"
# Refresh `last_used` at most this often: a polling pipeline would otherwise write on every request.
LAST_USED_EVERY = 60.0


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(user, name: str) -> tuple[ApiToken, str]:
    """A new token for `user`: the row, and the token text (to show once; only its digest is kept)."""
    key_id = secrets.token_hex(6)
    token = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    row = ApiToken.objects.create(user=user, name=name, key_id=key_id, digest=_digest(token))
    # Only the command line makes tokens: the event says so (its actor is the token's owner).
    audit.record(user, audit.Action.API_TOKEN_CREATED, target=str(row),
                 details=f"token {key_id}, made with manage.py api_token")
    return row, token


def revoke(request_or_user, token: ApiToken) -> bool:
    """Revoke `token` (False when it already was); the audit trail names who did it."""
    done = ApiToken.objects.filter(pk=token.pk, revoked__isnull=True).update(revoked=timezone.now())
    if done:
        audit.record(request_or_user, audit.Action.API_TOKEN_REVOKED, target=str(token),
                     details=f"token {token.key_id}")
    return bool(done)


def find(token: str) -> ApiToken | None:
    """The active token row `token` names, or None (malformed, unknown, revoked, or its user deactivated)."""
    if not token.startswith(PREFIX) or token.count("_") < 2:
        return None
    key_id = token[len(PREFIX):].split("_", 1)[0]
    row = ApiToken.objects.select_related("user").filter(key_id=key_id).first()
    if row is None or not hmac.compare_digest(row.digest, _digest(token)) or not row.is_active:
        return None
    return row


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>`. No header: not this scheme (the session may apply). A header with a
    bad, unknown or revoked token: 401, whatever session comes with it."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization: Bearer <token>, with one token and no spaces.")
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.")
        row = find(token)
        if row is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        now = timezone.now()
        if row.last_used is None or (now - row.last_used).total_seconds() > LAST_USED_EVERY:
            ApiToken.objects.filter(pk=row.pk).update(last_used=now)
        # The audit trail names the token on every change this request makes (nodes.audit.record).
        request._request.audit_via = f"API token {row.name!r}"
        return row.user, row

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'


class PerTokenThrottle(throttling.SimpleRateThrottle):
    """API_THROTTLE_RATE requests per token; a browser session counts per user, and anything else per address."""

    scope = "api"

    def get_rate(self):
        # Read on each request, not at import: the setting can change in tests and between deployments.
        return settings.API_THROTTLE_RATE

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiToken):
            ident = f"token-{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"addr-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema names the token scheme (`Authorization: Bearer jcc_...`)."""

    target_class = BearerTokenAuthentication
    name = "bearerToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "A token from `manage.py api_token USER --name NAME`."}
