"""Files a testbed hands to the console: SSH keys, the database password, schema SQL, the stand-in WAR."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# Seconds the stand-in jw.war waits while it starts, like Joget (whose start takes a minute or more): a roll
# must wait for the app, not only for Tomcat's port. Short, so the suites stay quick.
STANDIN_START_DELAY = 2

SCHEMA_SQL = """\
-- Written by the Joget cluster console testbed: a small stand-in for Joget's jwdb-mysql.sql.
CREATE TABLE IF NOT EXISTS `dir_user` (
  `id` varchar(255) NOT NULL,
  `username` varchar(255) DEFAULT NULL,
  `firstName` varchar(255) DEFAULT NULL,
  `lastName` varchar(255) DEFAULT NULL,
  `email` varchar(255) DEFAULT NULL,
  `active` int(11) DEFAULT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS `app_app` (
  `appId` varchar(255) NOT NULL,
  `appVersion` bigint(20) NOT NULL,
  `name` varchar(255) DEFAULT NULL,
  `published` bit(1) DEFAULT NULL,
  `dateCreated` datetime DEFAULT NULL,
  PRIMARY KEY (`appId`, `appVersion`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

INSERT IGNORE INTO `dir_user` (`id`, `username`, `firstName`, `active`) VALUES ('admin', 'admin', 'Admin', 1);
"""


def write_private(path: Path, data: bytes | str, mode: int = 0o600) -> Path:
    """Create `path` with `mode` from the start, so a secret is never readable by others, even briefly."""
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(raw)
    os.chmod(path, mode)
    return path


def generate_keypair(path: Path, comment: str) -> str:
    """An ed25519 key in OpenSSH format at `path` (+ `.pub`); returns the public line `type base64`."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    write_private(path, private)
    write_private(path.with_name(path.name + ".pub"), public + f" {comment}\n".encode(), 0o644)
    return public.decode()


def generate_db_password() -> str:
    """Random, and deliberately awkward: a quote, a double quote, a space and a `$` test every writer's quoting."""
    return f"tb'{secrets.token_urlsafe(6)} \"x${secrets.token_urlsafe(6)}"


def write_schema(state_dir: Path) -> Path:
    path = state_dir / "schema.sql"
    path.write_text(SCHEMA_SQL)
    return path


def build_jw_war(state_dir: Path, version: str, log: Callable[[str], None]) -> Path | None:
    """The stand-in jw.war, when the stand-in builder is present; None (with a note) otherwise."""
    try:
        from nodes.testbed.standin import build_war
    except ImportError as exc:
        log(f"no stand-in jw.war: nodes.testbed.standin is not available ({exc}); artifacts list the schema only")
        return None
    try:
        return Path(build_war(state_dir / "jw.war", version, start_delay=STANDIN_START_DELAY))
    except Exception as exc:  # noqa: BLE001 - a broken builder must not leave hosts half made
        log(f"WARNING: building the stand-in jw.war failed: {exc!r}; artifacts list the schema only")
        return None
