"""Re-encrypt every stored secret under the first key of SECRETS_ENCRYPTION_KEY.

Rotation: put the new key first ("NEW,OLD"), run this, then drop OLD. Every
EncryptedTextField of every installed model is found here by its type, so a
model added later needs nothing registered.
"""

from cryptography.fernet import Fernet, InvalidToken
from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import models, transaction
from django.db.models.functions import Cast

from joget_cluster.crypto import EncryptedTextField, fernet


def encrypted_fields() -> list[tuple[type[models.Model], list[str]]]:
    """(model, [field names]) for every concrete model with an EncryptedTextField."""
    found = []
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        # local fields only: a multi-table child's parent fields are the parent's rows.
        names = [f.name for f in model._meta.local_concrete_fields if isinstance(f, EncryptedTextField)]
        if names:
            found.append((model, names))
    return found


class Command(BaseCommand):
    help = ("Re-encrypt every stored secret with the first key of SECRETS_ENCRYPTION_KEY (one transaction). "
            "--check only counts the values not yet under the first key.")

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true",
                            help="change nothing; exit 1 if any value is not under the first key yet")

    def handle(self, *args, check: bool, **options):
        current = Fernet(settings.SECRETS_ENCRYPTION_KEYS[0])
        any_key = fernet()
        totals = {"stale": 0, "current": 0, "unreadable": []}
        with transaction.atomic():
            for model, names in encrypted_fields():
                counts = self._model(model, names, current, any_key, check, totals)
                label = model._meta.label
                if check:
                    self.stdout.write(f"{label}: {counts['stale']} of {counts['all']} values not yet under the "
                                      f"first key")
                else:
                    self.stdout.write(f"{label}: {counts['stale']} re-encrypted, {counts['current']} already "
                                      f"under the first key")
            unreadable = totals["unreadable"]
            if unreadable:
                shown = ", ".join(unreadable[:10]) + (f" and {len(unreadable) - 10} more" if len(unreadable) > 10
                                                      else "")
                raise CommandError(
                    f"{len(unreadable)} stored values cannot be decrypted with any key of SECRETS_ENCRYPTION_KEY "
                    f"({shown}). Add the key they were written with (after the new one) and run again."
                    + ("" if check else " Nothing was changed.")
                )
            if not check and totals["stale"]:
                from nodes import audit

                audit.record(None, audit.Action.SECRETS_ROTATED, target="stored secrets",
                             details=f"{totals['stale']} values re-encrypted under the first key")
        if check:
            if totals["stale"]:
                raise CommandError(f"{totals['stale']} values are not under the first key yet: run "
                                   "`manage.py rotate_secrets` before removing an old key.")
            self.stdout.write(self.style.SUCCESS("Every stored secret is under the first key."))
        else:
            self.stdout.write(self.style.SUCCESS(
                f"Done: {totals['stale']} values re-encrypted. Every stored secret is now under the first key, "
                "so the other keys can be removed from SECRETS_ENCRYPTION_KEY."))

    def _model(self, model, names, current, any_key, check, totals) -> dict:
        # Cast to a plain TextField: the raw token, not the field's decrypted value.
        raw = {f"_raw_{n}": Cast(n, models.TextField()) for n in names}
        rows = model._base_manager.order_by("pk").annotate(**raw).values_list("pk", *raw)
        if not check:
            rows = rows.select_for_update()  # no save elsewhere slips in between read and write
        counts = {"all": 0, "stale": 0, "current": 0}
        for pk, *tokens in rows:
            changes = {}
            for name, token in zip(names, tokens, strict=True):
                if not token:
                    continue
                counts["all"] += 1
                try:
                    current.decrypt(token.encode())
                    counts["current"] += 1
                    continue
                except InvalidToken:
                    pass
                try:
                    plain = any_key.decrypt(token.encode()).decode()
                except InvalidToken:
                    # Name the row, never the token.
                    totals["unreadable"].append(f"{model._meta.label}.{name} pk={pk}")
                    continue
                counts["stale"] += 1
                changes[name] = plain
            if changes and not check:
                # The field encrypts on the way in, with the first key.
                model._base_manager.filter(pk=pk).update(**changes)
        totals["stale"] += counts["stale"]
        totals["current"] += counts["current"]
        return counts
