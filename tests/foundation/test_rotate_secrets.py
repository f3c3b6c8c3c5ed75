"""Key rotation on real PostgreSQL: `rotate_secrets` re-encrypts every stored secret under
the first key, so the old key can be dropped; before it, the new key alone reads nothing
and says so without showing a value."""

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from licensing.models import License
from nodes.management.commands.rotate_secrets import encrypted_fields
from nodes.models import AuditEvent, Cluster, Credential, Node, SharedDatabase
from nodes.services import generate_key_pair
from tests.conftest import worker_database_url

ROOT = Path(__file__).resolve().parents[2]
OLD, NEW, OTHER = (Fernet.generate_key().decode() for _ in range(3))
SSH_PASSWORD = "ssh pw 'quoted' $(id)"
DB_PASSWORD = "db-password-77"
LICENSE = "LIC-0123456789-abcdef"


def keys(*k):
    return override_settings(SECRETS_ENCRYPTION_KEYS=list(k))


def raw(table, column, pk):
    with connection.cursor() as cur:
        cur.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608 - fixed names
        return cur.fetchone()[0]


def run(*args) -> str:
    out = StringIO()
    call_command("rotate_secrets", *args, stdout=out)
    return out.getvalue()


def make_secrets() -> dict:
    """One value in every model that has secrets; empty fields stay empty (nothing to rotate)."""
    cluster = Cluster.objects.create(name="prod", joget_admin_password="joget-admin-pw")
    node = Node.objects.create(cluster=cluster, name="app1", address="10.0.0.11", is_app_server=True,
                               jvm_route="node01")
    pw = Credential.objects.create(name="root-pw", kind="password", password=SSH_PASSWORD)
    key = generate_key_pair("deploy")
    db = SharedDatabase.objects.create(cluster=cluster, node=node, password=DB_PASSWORD)
    lic = License.objects.create(node=node, license_text=LICENSE)
    return {"cluster": cluster, "pw": pw, "key": key, "db": db, "lic": lic}


def test_every_encrypted_field_is_found_by_its_type():
    found = {model._meta.label: names for model, names in encrypted_fields()}
    assert found == {
        "nodes.Credential": ["private_key", "passphrase", "password"],
        "nodes.Cluster": ["joget_admin_password"],
        "nodes.SharedDatabase": ["password"],
        "licensing.License": ["license_text"],
    }


@pytest.mark.django_db
def test_rotation_lets_the_old_key_go():
    with keys(OLD):
        s = make_secrets()
        private_key = Credential.objects.get(name="deploy").private_key
    before = raw("nodes_credential", "password", s["pw"].pk)

    # The new key alone: nothing reads, and the error names no value.
    with keys(NEW):
        with pytest.raises(ValueError) as exc:
            Credential.objects.get(name="root-pw")
        assert "cannot be decrypted with SECRETS_ENCRYPTION_KEY" in str(exc.value)
        assert before not in str(exc.value) and SSH_PASSWORD not in str(exc.value)
        with pytest.raises(CommandError) as exc:
            run("--check")
        message = str(exc.value)
        assert "5 stored values cannot be decrypted with any key" in message
        assert f"nodes.Credential.password pk={s['pw'].pk}" in message
        assert before not in message and SSH_PASSWORD not in message

    # New key first, old key second: everything reads; --check counts what is still under the old key.
    with keys(NEW, OLD):
        assert Credential.objects.get(name="root-pw").password == SSH_PASSWORD
        out = StringIO()
        with pytest.raises(CommandError, match="5 values are not under the first key yet"):
            call_command("rotate_secrets", "--check", stdout=out)
        assert "nodes.Credential: 2 of 2 values not yet under the first key" in out.getvalue()
        assert "licensing.License: 1 of 1 values not yet under the first key" in out.getvalue()

        out = run()
        assert "nodes.Credential: 2 re-encrypted, 0 already under the first key" in out
        assert "nodes.Cluster: 1 re-encrypted" in out and "nodes.SharedDatabase: 1 re-encrypted" in out
        assert "licensing.License: 1 re-encrypted" in out
        assert "Done: 5 values re-encrypted" in out
    assert raw("nodes_credential", "password", s["pw"].pk) != before
    [event] = AuditEvent.objects.filter(action=AuditEvent.Action.SECRETS_ROTATED)
    assert event.details == "5 values re-encrypted under the first key" and event.username == ""

    # The old key dropped: every value still reads.
    with keys(NEW):
        assert Credential.objects.get(name="root-pw").password == SSH_PASSWORD
        assert Credential.objects.get(name="deploy").private_key == private_key
        assert Credential.objects.get(name="deploy").passphrase == ""
        assert SharedDatabase.objects.get().password == DB_PASSWORD
        assert Cluster.objects.get().joget_admin_password == "joget-admin-pw"
        assert License.objects.get().license_text == LICENSE
        assert "Every stored secret is under the first key." in run("--check")
        assert "Done: 0 values re-encrypted" in run()


@pytest.mark.django_db
def test_a_value_no_key_reads_stops_the_rotation_and_changes_nothing():
    with keys(OLD):
        s = make_secrets()
    with keys(OTHER):
        Credential.objects.create(name="lost", kind="password", password="written under a forgotten key")
    before = raw("nodes_credential", "password", s["pw"].pk)
    with keys(NEW, OLD), pytest.raises(CommandError) as exc:
        run()
    assert "1 stored values cannot be decrypted" in str(exc.value) and "Nothing was changed." in str(exc.value)
    assert raw("nodes_credential", "password", s["pw"].pk) == before  # the transaction rolled back
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SECRETS_ROTATED).exists()


def manage(env_keys: str, *args):
    env = {**os.environ, "SECRETS_ENCRYPTION_KEY": env_keys, "DATABASE_URL": worker_database_url()}
    return subprocess.run([sys.executable, "manage.py", "rotate_secrets", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.django_db(transaction=True)
def test_the_command_as_an_admin_runs_it():
    with keys(OLD):
        s = make_secrets()
    token = raw("nodes_credential", "password", s["pw"].pk)

    r = manage(NEW)
    assert r.returncode == 1
    assert "cannot be decrypted with any key of SECRETS_ENCRYPTION_KEY" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert token not in r.stderr + r.stdout and SSH_PASSWORD not in r.stderr + r.stdout

    r = manage(f"{NEW},{OLD}")
    assert r.returncode == 0, r.stderr
    assert "nodes.Credential: 2 re-encrypted, 0 already under the first key" in r.stdout

    r = manage(NEW, "--check")
    assert r.returncode == 0 and "Every stored secret is under the first key." in r.stdout
    with keys(NEW):
        assert Credential.objects.get(name="root-pw").password == SSH_PASSWORD
