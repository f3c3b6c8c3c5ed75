"""The audit trail: who did what, when, from where.

Views call `record(request, action, ...)` after the change they made; logins,
failed logins, lockouts and logouts are recorded from Django's (and
django-axes') signals. Callers pass names and descriptions, never secrets:
no password, private key, passphrase or license text goes into `details`.

`trail` records events, `source` tells a request's client address, `receivers` records logins from
signals (connected by the app config), `views` is the read-only page.
"""

from .source import client_ip
from .trail import Action, changed_fields, record, record_host_key_mismatch

__all__ = ["Action", "changed_fields", "client_ip", "record", "record_host_key_mismatch"]
