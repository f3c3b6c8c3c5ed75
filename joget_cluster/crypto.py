"""Secrets at rest: a model field that stores Fernet tokens, never plain text.

Keys come from SECRETS_ENCRYPTION_KEY (comma-separated; the first encrypts,
all decrypt), so `rotate_secrets` can re-encrypt under a new key while the old
one still reads.
"""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(k) for k in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.SECRETS_ENCRYPTION_KEYS))


def encrypt(plain: str) -> str:
    return fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        # Never echo the token or a fragment of it: just say which way to look.
        raise ValueError(
            "A stored secret cannot be decrypted with SECRETS_ENCRYPTION_KEY: "
            "the key was changed without `manage.py rotate_secrets`."
        ) from None


class EncryptedTextField(models.TextField):
    """Plain text in Python, a Fernet token in the database. Empty stays empty."""

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return encrypt(value)
