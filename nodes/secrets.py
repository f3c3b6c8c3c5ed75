"""The cluster's secrets and the one masker that keeps them out of everything stored or shown.

Every text that came from a node or a step (log lines, diffs, the catalina tail, Joget's pages) passes
through `masker(cluster_secrets(cluster))` before it is stored. Apps above this floor add their own
secrets (licensing: the license texts) with `register`, so this module never imports them.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable

from django.db.models import Q

MASK = "********"

# Shorter values would garble ordinary text ("admin" in every page); none of the console's generated
# secrets is that short, and a chosen one that short is refused by the forms.
MIN_SECRET_LENGTH = 3

_providers: list[Callable[[object], Iterable]] = []


def register(provider: Callable[[object], Iterable]) -> Callable[[object], Iterable]:
    """Add a source of secrets: `provider(cluster)` returns a values_list-like iterable of 1-tuples or
    strings. Called from an upper app's `ready()`; idempotent."""
    if provider not in _providers:
        _providers.append(provider)
    return provider


def cluster_secrets(cluster) -> list[str]:
    """Every secret a step of this cluster could print: masked before storage.

    One query for the inventory's own secrets, and each credential decrypted once (loading it with every
    node decrypted it per node: at 16 app servers that was a tenth of the worker's CPU)."""
    from .models import Credential, SharedDatabase

    # order_by(): the models' default orderings would put ORDER BY inside the compound statement, which
    # SQLite refuses (PostgreSQL accepts it).
    creds = Credential.objects.filter(Q(pk=cluster.credential_id) | Q(node__cluster=cluster)).order_by()
    parts = [creds.values_list("password"), creds.values_list("passphrase")]
    # UNION (not ALL) keeps each stored value once; every column is an EncryptedTextField, decrypted as read.
    rows = SharedDatabase.objects.filter(cluster=cluster).order_by().values_list("password").union(*parts)
    values = [cluster.joget_admin_password, *(row[0] for row in rows)]
    for provider in _providers:
        values.extend(v[0] if isinstance(v, tuple) else v for v in provider(cluster))
    seen: dict[str, None] = {}
    for value in values:
        if value:
            seen.setdefault(value, None)
    return list(seen)


def masker(secrets: Iterable[str], *, shown_as: Callable[[str], str] | None = None,
           min_length: int = MIN_SECRET_LENGTH) -> Callable[[str], str]:
    """A function that replaces each secret, as is and HTML-escaped (pages escape what they echo), by
    `shown_as(secret)` (default: ********). Longest first, so a secret that contains another is masked
    whole."""
    values = sorted({s.strip() for s in secrets if s and len(s.strip()) >= min_length}, key=len, reverse=True)
    pairs = []
    for value in values:
        replacement = shown_as(value) if shown_as else MASK
        for form in dict.fromkeys([value, html.escape(value), html.escape(value, quote=False)]):
            pairs.append((form, replacement))

    def mask(text: str) -> str:
        for form, replacement in pairs:
            if form in text:
                text = text.replace(form, replacement)
        return text

    return mask
