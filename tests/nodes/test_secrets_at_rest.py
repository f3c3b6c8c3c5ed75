import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from joget_cluster.crypto import decrypt
from nodes.models import Cluster, Credential, SharedDatabase
from nodes.services import generate_key_pair

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def _raw(table, column, pk):
    with connection.cursor() as cur:
        cur.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608 - fixed names
        return cur.fetchone()[0]


def test_database_password_is_encrypted_in_the_database():
    cluster = Cluster.objects.create(name="c1")
    db = SharedDatabase.objects.create(cluster=cluster, host="10.0.0.5", password="pa ss'$(id)")
    stored = _raw("nodes_shareddatabase", "password", db.pk)
    assert "pa ss" not in stored and stored.startswith("gAAAA")
    assert decrypt(stored) == "pa ss'$(id)"
    assert SharedDatabase.objects.get(pk=db.pk).password == "pa ss'$(id)"


def test_generated_key_pair_is_encrypted_and_public_key_is_shown():
    cred = generate_key_pair("deploy")
    stored = _raw("nodes_credential", "private_key", cred.pk)
    assert "PRIVATE KEY" not in stored
    assert Credential.objects.get(pk=cred.pk).private_key.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert cred.public_key.startswith("ssh-ed25519 ")


@pytest.mark.parametrize(
    "env,message",
    [
        ({"SECRETS_ENCRYPTION_KEY": "not-a-key"}, "SECRETS_ENCRYPTION_KEY: key #1 is not a Fernet key"),
        ({"SECRET_KEY": ""}, "SECRET_KEY is not set"),
        ({"PORT": "80x"}, "PORT='80x' is not a TCP port"),
        ({"DATABASE_URL": "mysql://u@h/db"}, "DATABASE_URL must be postgres"),
        ({"CELERY_BROKER_URL": "amqp://x"}, "CELERY_BROKER_URL must be"),
    ],
)
def test_bad_settings_fail_loudly(env, message):
    r = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "joget_cluster.settings", **env},
        capture_output=True, text=True, cwd=ROOT,
    )
    assert r.returncode != 0
    assert message in r.stderr
