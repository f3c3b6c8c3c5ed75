"""Build the stand-in for Joget's ``jw.war`` (JSP only, for Tomcat 10+; see docs/standin.md).

The WAR's sources live next to this module in ``standin_war/``; :func:`build_war` zips them with a
generated ``WEB-INF/standin.properties`` (the version) and the MariaDB JDBC driver from Debian's
``libmariadb-java`` package. The output is deterministic (sorted entries, fixed timestamps and
permissions), so the same sources, version and driver give the same checksum.

This module needs only the standard library (no Django).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import zipfile
from pathlib import Path

__all__ = ["MARIADB_JDBC_JAR", "SOURCE_DIR", "MissingJdbcDriverError", "build_war", "sha256_of"]

SOURCE_DIR = Path(__file__).resolve().parent / "standin_war"
MARIADB_JDBC_JAR = Path("/usr/share/java/mariadb-java-client.jar")
JAR_ENTRY = "WEB-INF/lib/mariadb-java-client.jar"
VERSION_ENTRY = "WEB-INF/standin.properties"
WAR_NAME = "jw.war"

_FIXED_DATE = (2000, 1, 1, 0, 0, 0)
_VERSION_RE = re.compile(r"^[0-9]+(\.[0-9A-Za-z_-]+)*$")
_SKIP_PARTS = {"__pycache__", ".DS_Store"}


class MissingJdbcDriverError(FileNotFoundError):
    """The MariaDB JDBC driver jar is not installed."""


def _entry(name: str, mode: int = 0o644) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_FIXED_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # Unix, so the permission bits below are honoured
    info.external_attr = (0o100000 | mode) << 16
    return info


def _source_files() -> list[tuple[str, Path]]:
    if not (SOURCE_DIR / "WEB-INF" / "web.xml").is_file():
        raise FileNotFoundError(f"stand-in WAR sources missing: {SOURCE_DIR}/WEB-INF/web.xml")
    files = []
    for path in SOURCE_DIR.rglob("*"):
        rel = path.relative_to(SOURCE_DIR)
        if path.is_file() and not _SKIP_PARTS.intersection(rel.parts) and not rel.name.endswith((".pyc", "~")):
            files.append((rel.as_posix(), path))
    return sorted(files)


def _war_path(dest: Path) -> Path:
    dest = Path(dest)
    if dest.is_dir() or (not dest.exists() and dest.suffix.lower() != ".war"):
        return dest / WAR_NAME
    return dest


def build_war(dest: Path, version: str = "8.1", *, start_delay: float = 0, build: str = "") -> Path:
    """Write the stand-in WAR and return its path.

    ``dest`` is a file path (normally ending in ``jw.war``) or a directory, in which case the WAR
    is ``dest/jw.war``; missing parent directories are created. ``version`` (e.g. ``"8.1"``) is
    baked into ``WEB-INF/standin.properties``; its major part goes into the system key. The file
    is written to a temporary name and renamed, so Tomcat's auto-deployer never sees half a WAR.

    ``start_delay``: seconds the web application waits while it starts, like Joget's (-Dstandin.startDelay
    overrides it on a node). ``build``: the label `/jw/testbed/session` shows as ``build=``; by default the
    first 8 hex digits of the SHA-256 of everything else in the WAR, so two different WARs show different builds.

    Raises :class:`MissingJdbcDriverError` if the MariaDB driver jar is not installed.
    """
    version = str(version).strip()
    if not _VERSION_RE.match(version):
        raise ValueError(f"invalid version {version!r}: expected something like '8.1' or '8.1.6'")
    jar = Path(MARIADB_JDBC_JAR)
    if not jar.is_file():
        raise MissingJdbcDriverError(
            f"MariaDB JDBC driver not found at {jar}; install it with: apt-get install libmariadb-java"
        )
    target = _war_path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)

    entries: list[tuple[str, bytes]] = [(name, path.read_bytes()) for name, path in _source_files()]
    if start_delay < 0:
        raise ValueError("start_delay: seconds, 0 or more")
    if build and not re.match(r"^[0-9A-Za-z._-]{1,40}$", build):
        raise ValueError(f"invalid build label {build!r}")
    content = hashlib.sha256()
    for name, data in sorted(entries):
        content.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    content.update(f"version={version} startDelay={start_delay:g}".encode())
    properties = (f"# Joget stand-in, written by nodes/testbed/standin.py\nversion={version}\n"
                  f"build={build or content.hexdigest()[:8]}\nstartDelay={start_delay:g}\n")
    manifest = "Manifest-Version: 1.0\r\nCreated-By: joget-cluster-console stand-in\r\n\r\n"
    entries.append((VERSION_ENTRY, properties.encode()))
    entries.append((JAR_ENTRY, jar.read_bytes()))
    entries.append(("META-INF/MANIFEST.MF", manifest.encode()))
    names = [name for name, _ in entries]
    if len(names) != len(set(names)):
        raise ValueError(f"duplicate entries in the stand-in WAR sources: {sorted(names)}")
    # META-INF/MANIFEST.MF first (as jar tools do), then everything in name order.
    entries.sort(key=lambda e: (e[0] != "META-INF/MANIFEST.MF", e[0]))

    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w") as zf:
            for name, data in entries:
                zf.writestr(_entry(name), data)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file (handy to compare a deployed WAR with a fresh build)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
