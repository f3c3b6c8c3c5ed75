"""Cluster backups and restores: what a backup holds, where it goes, and how runs of them start.

A backup is a run of the deployment engine with the steps of deployments/backup_steps.py (live log,
recap, Retry and Cancel for free): the shared database dumped and the shared directory tarred on the
nodes, both gzipped there and streamed over SSH straight into Django storage (`storages["backups"]`,
STORAGE_URL), hashed on the way; the console's desired state (the inventory without secrets); and a
manifest of sizes, sha256s, the Joget version and the WARs' sha256s. A restore is a run of the restore
steps: check every checksum, stop the app servers, load the database and the files, start, post_test.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass, field

from django.core.files.storage import storages
from django.db import transaction
from django.utils import timezone

from nodes.models import Cluster

from . import engine
from .models import Backup, Deployment, Restore

BACKUP_STEPS = ["backup.database", "backup.files", "backup.desired_state", "backup.manifest"]
RESTORE_STEPS = ["restore.check", "restore.stop", "restore.database", "restore.files", "restore.start",
                 "restore.post_test"]
FILENAMES = {"database": "database.sql.gz", "files": "shared-directory.tar.gz",
             "desired_state": "desired-state.json", "manifest": "manifest.json"}
DATA_PARTS = ("database", "files", "desired_state")  # what the manifest lists; the manifest lists itself not
MANIFEST_VERSION = 1
READ_CHUNK = 1024 * 1024


def storage():
    return storages["backups"]


def new_backup_id(now=None) -> str:
    now = now or timezone.now()
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def part_name(cluster_name: str, backup_id: str, part: str) -> str:
    return f"{cluster_name}/{backup_id}/{FILENAMES[part]}"


# -- storage: written as it streams, read as it streams ------------------------------------------------

class HashingWriter:
    """A file in storage opened for writing, that counts and hashes what goes through it. The chunks are
    written as they come (a local file, or the parts of an S3 multipart upload): nothing is held whole."""

    def __init__(self, name: str, store=None):
        self.store = store or storage()
        self.name = name
        self.size = 0
        self._sha = hashlib.sha256()
        path = _local_path(self.store, name)
        if path:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        self._fh = self.store.open(name, "wb")

    def write(self, chunk: bytes) -> None:
        self._sha.update(chunk)
        self.size += len(chunk)
        self._fh.write(chunk)

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def close(self) -> dict:
        self._fh.close()
        return {"name": self.name, "size": self.size, "sha256": self.sha256}

    def discard(self) -> None:
        try:
            self._fh.close()
        finally:
            self.store.delete(self.name)


def _local_path(store, name: str) -> str:
    try:
        return store.path(name)
    except NotImplementedError:
        return ""


def open_read(name: str, store=None):
    """A binary file object reading `name` from storage in chunks. django-storages' S3File downloads the
    whole object first (into memory, with the default max_memory_size), so S3 is read as its response body."""
    store = store or storage()
    bucket = getattr(store, "bucket", None)
    if bucket is not None and hasattr(store, "_normalize_name"):
        from storages.utils import clean_name

        key = store._normalize_name(clean_name(name))
        return bucket.meta.client.get_object(Bucket=bucket.name, Key=key)["Body"]
    return store.open(name, "rb")


def sha256_of(name: str, store=None) -> tuple[int, str]:
    h, size = hashlib.sha256(), 0
    fh = open_read(name, store)
    try:
        for chunk in iter(lambda: fh.read(READ_CHUNK), b""):
            h.update(chunk)
            size += len(chunk)
    finally:
        fh.close()
    return size, h.hexdigest()


# -- the manifest (pure, unit-tested) ------------------------------------------------------------------

def build_manifest(*, cluster_name: str, backup_id: str, joget_version: str, parts: dict, wars: dict,
                   created: str, finished: str, database: dict) -> dict:
    """What a backup holds, enough to check it and to know what it came from. Only names, sizes, checksums
    and versions: never a password (the desired state is the inventory export without secrets)."""
    return {
        "format": MANIFEST_VERSION,
        "cluster": cluster_name,
        "backup_id": backup_id,
        "joget_version": joget_version,
        "created": created,
        "finished": finished,
        "database": database,
        "parts": {p: {"file": FILENAMES[p], "size": parts[p]["size"], "sha256": parts[p]["sha256"]}
                  for p in DATA_PARTS if p in parts},
        "wars": wars,
    }


def manifest_problems(manifest: dict, found: dict[str, tuple[int, str] | None]) -> list[str]:
    """What does not match between the manifest and the files as read now ({part: (size, sha256)} or None
    for a missing file); [] when all is well."""
    problems = []
    listed = manifest.get("parts") or {}
    for part in DATA_PARTS:
        if part not in listed:
            problems.append(f"the manifest does not list the {part} part")
            continue
        got = found.get(part)
        if got is None:
            problems.append(f"{listed[part]['file']} is missing from the store")
        elif got[1] != listed[part]["sha256"]:
            problems.append(f"{listed[part]['file']}: sha256 {got[1]}, the manifest says {listed[part]['sha256']} "
                            f"({got[0]} bytes, the manifest says {listed[part]['size']})")
    return problems


@dataclass
class Verified:
    ok: bool
    problems: list[str] = field(default_factory=list)


def verify(backup: Backup, log=lambda text: None) -> Verified:
    """Read the manifest and every part from storage and compare their checksums (also with what the
    console recorded when it wrote them: a manifest edited to match a damaged file is caught too)."""
    store = storage()
    mname = part_name(backup.cluster.name, backup.backup_id, "manifest")
    try:
        fh = open_read(mname, store)
        try:
            raw = fh.read()
        finally:
            fh.close()
        manifest = json.loads(raw)
    except Exception as exc:  # noqa: BLE001 - missing, unreadable or not JSON: all mean "do not restore this"
        return Verified(False, [f"the manifest {mname} cannot be read: {type(exc).__name__}: {exc}"])
    problems = []
    recorded = (backup.parts or {}).get("manifest", {}).get("sha256")
    if recorded and hashlib.sha256(raw).hexdigest() != recorded:
        problems.append("manifest.json is not the one the console wrote (its sha256 differs)")
    found = {}
    for part in DATA_PARTS:
        name = part_name(backup.cluster.name, backup.backup_id, part)
        log(f"checking {FILENAMES[part]} …")
        try:
            found[part] = sha256_of(name, store)
        except Exception:  # noqa: BLE001 - a missing or unreadable part is reported as missing
            found[part] = None
    problems += manifest_problems(manifest, found)
    return Verified(not problems, problems)


# -- starting runs -------------------------------------------------------------------------------------

def start_backup(cluster: Cluster, *, user=None, reason: str = Backup.Reason.ON_DEMAND, note: str = "") -> Backup:
    """Start a backup run of `cluster`; its Backup row (state running) is returned at once.
    Raises engine.DeploymentRefused (e.g. another run of the cluster is going on)."""
    with transaction.atomic():
        dep = engine.start(cluster, user=user, steps=BACKUP_STEPS)
        return Backup.objects.create(cluster=cluster, backup_id=new_backup_id(), deployment=dep, reason=reason,
                                     note=note[:200])


def backs_up_first(cluster: Cluster) -> bool:
    """The cluster's setting (on by default): back up before an upgrade, a scale operation or a restore."""
    from .models import BackupPolicy

    policy = BackupPolicy.objects.filter(cluster=cluster).first()
    return policy.before_operations if policy else True


def start_operation(cluster: Cluster, steps: list[str], *, operation: str = Deployment.Operation.DEPLOY,
                    options: dict | None = None, user=None, note: str = "",
                    backup_first: bool | None = None) -> tuple[Deployment, Backup | None]:
    """Start a run of `steps` (an upgrade, a scale operation, a restore) that first backs the cluster up, when
    `backup_first` (None: the cluster's setting, on by default) says so. The backup steps go first in the same
    run (one run per cluster at a time), and the operation's steps wait for backup.manifest (each names it in its
    `depends_on`; a dependency on a step not in the run is ignored): a failed backup skips them all, before any
    node is touched. The backup's id is in the run's options (`backup_first`) and log. Returns the run and the
    Backup row (reason before_operation), or None when no backup was asked for.
    Raises engine.DeploymentRefused (e.g. another run of the cluster is going on)."""
    first = backs_up_first(cluster) if backup_first is None else backup_first
    options = dict(options or {})
    backup_id = new_backup_id() if first else ""
    if first:
        options["backup_first"] = backup_id
    with transaction.atomic():
        dep = engine.start(cluster, user=user, steps=(BACKUP_STEPS + steps) if first else steps,
                           operation=operation, options=options)
        pre = Backup.objects.create(cluster=cluster, backup_id=backup_id, deployment=dep,
                                    reason=Backup.Reason.BEFORE_OPERATION, note=note[:200]) if first else None
    return dep, pre


def start_restore(backup: Backup, *, user=None, exact: bool = False, backup_first: bool | None = None) -> Restore:
    if backup_state(backup) != Backup.State.COMPLETE:
        raise engine.DeploymentRefused(f"Backup {backup.backup_id} is {backup_state(backup)}, not complete: "
                                       "it cannot be restored.")
    with transaction.atomic():
        dep, pre = start_operation(backup.cluster, RESTORE_STEPS, user=user, backup_first=backup_first,
                                   note=f"before restoring {backup.backup_id}")
        return Restore.objects.create(cluster=backup.cluster, backup=backup, deployment=dep, exact=exact,
                                      pre_backup=pre.backup_id if pre else "")


def current_backup(cluster: Cluster) -> Backup:
    """The backup whose run is going on now (one run per cluster at a time: at most one)."""
    return Backup.objects.filter(cluster=cluster, deployment__status=Deployment.Status.RUNNING).latest("created")


def current_restore(cluster: Cluster) -> Restore:
    return Restore.objects.select_related("backup__cluster").filter(
        cluster=cluster, deployment__status=Deployment.Status.RUNNING).latest("created")


def record_part(backup: Backup, part: str, info: dict) -> None:
    # Parts finish in parallel steps: each adds its own key under a row lock.
    with transaction.atomic():
        row = Backup.objects.select_for_update().get(pk=backup.pk)
        row.parts = {**row.parts, part: info}
        row.save(update_fields=["parts"])


def backup_state(backup: Backup) -> str:
    """The stored state, except that a backup whose run ended without completing it is failed."""
    if backup.state == Backup.State.RUNNING and backup.deployment_id:
        dep_status = Deployment.objects.filter(pk=backup.deployment_id).values_list("status", flat=True).first()
        if dep_status and dep_status != Deployment.Status.RUNNING:
            Backup.objects.filter(pk=backup.pk, state=Backup.State.RUNNING).update(
                state=Backup.State.FAILED, finished=timezone.now())
            backup.state = Backup.State.FAILED
    return backup.state


def summary(backup: Backup) -> dict:
    """A backup as `manage.py backups --format json` and the API show it: names, sizes, checksums, never a
    secret (the parts are storage names with their size and sha256)."""
    return {
        "id": backup.backup_id, "state": backup_state(backup), "created": backup.created.isoformat(),
        "finished": backup.finished.isoformat() if backup.finished else None, "reason": backup.reason,
        "note": backup.note, "size": backup.total_size,
        "parts": {p: {"size": v.get("size"), "sha256": v.get("sha256")} for p, v in backup.parts.items()},
        "joget_version": backup.manifest.get("joget_version", ""),
    }


def delete_backup(backup: Backup) -> None:
    store = storage()
    for part in FILENAMES:
        name = part_name(backup.cluster.name, backup.backup_id, part)
        if store.exists(name):
            store.delete(name)
    backup.delete()


def restore_outcome(restore: Restore) -> str:
    """In words: the state the restore left the cluster in (what an admin must know after a failure)."""
    dep = restore.deployment
    if dep is None:
        return "The restore did not start."
    st = {}
    for step, status in dep.runs.values_list("step", "status"):
        st.setdefault(step, set()).add(status)

    def done(key):
        return st.get(key, set()) <= {"ok", "changed"} and key in st

    def touched(key):
        return bool(st.get(key, set()) & {"ok", "changed", "failed", "cancelled"})

    if dep.status == Deployment.Status.RUNNING:
        return "The restore is still running."
    if dep.status == Deployment.Status.SUCCEEDED:
        return (f"Restored backup {restore.backup.backup_id}: database and shared directory loaded, the app servers "
                "answer, post_test passed.")
    if not touched("restore.stop"):
        return "Nothing was changed: the backup was refused before any app server stopped."
    parts = []
    parts.append("the database was restored" if done("restore.database") else
                 ("the database restore failed part-way: the database may hold a mix of old and restored tables"
                  if touched("restore.database") else "the database was not touched"))
    parts.append("the shared directory was restored" if done("restore.files") else
                 ("the shared directory restore failed part-way: some files are restored, others not"
                  if touched("restore.files") else "the shared directory was not touched"))
    parts.append("the app servers run again" if done("restore.start") else
                 "the app servers are STOPPED (start them with Retry or a deployment)")
    if done("restore.start") and not done("restore.post_test"):
        parts.append("but post_test did not pass")
    return "The restore failed: " + "; ".join(parts) + ". Retry the failed step or restore again."
