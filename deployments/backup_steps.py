"""The steps of a backup run and of a restore run (never in the deployment plan: `in_default_plan = False`).

Each step finds its Backup or Restore row as the one whose run is going on for the cluster (one run per
cluster at a time). Probes change nothing (a dry run of these steps only says what it would do); the work
is each step's one Change. Data moves as streams: the node gzips, the worker copies chunks between the
SSH channel and storage, nothing is held whole in memory or copied twice on a node's disk.
"""

from __future__ import annotations

import hashlib
import io
import json

from django.utils import timezone

from nodes.inventory import dump_inventory
from nodes.models import LayerMode
from nodes.ssh import DIR_OWNER_SH, SSHError, quote

from . import backups
from .models import Backup
from .steps import Change, Step, StepFailed, register
from .steps import tomcat_tools as tt
from .steps.joget import ANONYMOUS, APP_TIMEOUT, app_url_path, wars
from .steps.mysql import ROOT_OPTS, client_option_file
from .steps.post_test import PostDeploymentTest
from .steps.toolbox import PATH_SETUP

STREAM_TIMEOUT = 6 * 3600.0  # a channel idle this long is dead; a big dump keeps it busy
DUMP_OPTIONS = "--single-transaction --quick --routines --triggers --hex-blob --default-character-set=utf8mb4"
PROGRESS_EVERY = 64 * 1024 * 1024


# -- where each part is read and written ----------------------------------------------------------------

def database_source(cluster):
    """(node, managed): the database node itself when the console manages the database (root over the local
    socket, as database.schema does), else the first app server, logging in as the Joget user."""
    db = cluster.layer("shared_database")
    if db is None:
        raise StepFailed(f"Cluster {cluster.name} has no shared database to back up.")
    if db.mode == LayerMode.MANAGED and db.node_id:
        return db.node, True
    node = cluster.app_servers().first()
    if node is None:
        raise StepFailed("No app server to reach the existing database from.")
    return node, False


def files_source(cluster):
    """(node, directory): the file server's export when the console manages it, else the wflow home as
    the first app server mounts it (one reader: every app server sees the same files)."""
    sd = cluster.layer("shared_directory")
    if sd is not None and sd.mode == LayerMode.MANAGED and sd.node_id:
        return sd.node, sd.export_path
    node = cluster.app_servers().first()
    if node is None:
        raise StepFailed("No app server to read the shared directory from.")
    return node, cluster.wflow_home


def client_login(cluster, managed: bool, tmp: str) -> str:
    """The client options before any other: root's debian.cnf, or the Joget user's option file in `tmp`."""
    if managed:
        return ROOT_OPTS
    db = cluster.layer("shared_database")
    return (f"set -- --defaults-extra-file={quote(tmp + '/client.cnf')} -h {quote(db.connect_host)} "
            f"-P {int(db.port)} -u {quote(db.user)}; ")


def dump_command(cluster, managed: bool, tmp: str = "") -> str:
    db = cluster.layer("shared_database")
    # sh has no pipefail: the dump's exit status comes back on stderr as a marker line.
    return (f"{PATH_SETUP}; dump=$(command -v mariadb-dump || command -v mysqldump) || "
            "{ echo 'no mariadb-dump or mysqldump on this node' >&2; exit 127; }; "
            f"{client_login(cluster, managed, tmp)}"
            f"{{ \"$dump\" \"$@\" {DUMP_OPTIONS} -- {quote(db.name)}; echo \"jcc-exit=$?\" >&2; }} | gzip -c")


def load_command(cluster, managed: bool, tmp: str = "") -> str:
    db = cluster.layer("shared_database")
    return (f"{PATH_SETUP}; client=$(command -v mariadb || command -v mysql) || "
            "{ echo 'no mariadb or mysql client on this node' >&2; exit 127; }; "
            f"{client_login(cluster, managed, tmp)}"
            f"{{ gzip -dc; echo \"jcc-exit=$?\" >&2; }} | \"$client\" \"$@\" --default-character-set=utf8mb4 "
            f"-- {quote(db.name)}")


def tar_command(directory: str) -> str:
    # As the directory's owner (the service user for the wflow home): root never reads through its links.
    inner = f"cd {quote(directory)} && {{ tar -cf - .; echo \"jcc-exit=$?\" >&2; }} | gzip -c"
    return f"{DIR_OWNER_SH}\nas_dir_owner {quote(directory)} sh -c {quote(inner)}"


def untar_command(directory: str, exact: bool) -> str:
    # cd first: runuser keeps root's working directory, which the service user cannot read (find needs it).
    clear = "find . -mindepth 1 -delete && " if exact else ""
    inner = f"cd {quote(directory)} && {clear}tar --no-overwrite-dir -xzf -"
    return f"{DIR_OWNER_SH}\nas_dir_owner {quote(directory)} sh -c {quote(inner)}"


def marker_ok(stderr: str, allowed: tuple[int, ...] = (0,)) -> bool:
    codes = [line.split("=", 1)[1].strip() for line in stderr.splitlines() if line.startswith("jcc-exit=")]
    return bool(codes) and all(c.isdigit() and int(c) in allowed for c in codes)


class _Secrets:
    """A private 0700 directory on the node holding the Joget user's client option file (existing
    databases only), removed afterwards: the password never reaches a command line."""

    def __init__(self, ctx, conn, cluster, managed: bool):
        self.ctx, self.conn, self.cluster, self.managed, self.tmp = ctx, conn, cluster, managed, ""

    def __enter__(self) -> str:
        if self.managed:
            return ""
        made = self.conn.run("umask 077; mktemp -d /tmp/jcc-sql.XXXXXXXX", sudo=False)
        if not made.ok:
            raise StepFailed(f"cannot create a private temporary directory: {made.stderr.strip()[-200:]}")
        self.tmp = made.stdout.strip()
        db = self.cluster.layer("shared_database")
        self.conn.upload(io.BytesIO(client_option_file(db.password).encode()), f"{self.tmp}/client.cnf")
        return self.tmp

    def __exit__(self, *exc):
        if self.tmp:
            try:
                self.conn.run(f"rm -rf {quote(self.tmp)}")
            except SSHError:
                self.ctx.log(f"could not remove {self.tmp} on the node")


def _progress(ctx, what: str):
    state = {"next": PROGRESS_EVERY}

    def seen(size: int) -> None:
        if size >= state["next"]:
            ctx.log(f"{what}: {size // (1024 * 1024)} MB so far")
            state["next"] += PROGRESS_EVERY

    return seen


def stream_to_storage(ctx, conn, command: str, name: str, what: str, allowed=(0,)) -> dict:
    writer = backups.HashingWriter(name)
    seen = _progress(ctx, what)

    def sink(chunk: bytes) -> None:
        writer.write(chunk)
        seen(writer.size)

    try:
        result = conn.stream(ctx.wrap(command), sink, timeout=STREAM_TIMEOUT, emit=_not_markers(ctx))
    except BaseException:
        writer.discard()
        raise
    if not result.ok or not marker_ok(result.stderr, allowed):
        writer.discard()
        tail = " / ".join(result.stderr.strip().splitlines()[-4:])
        raise StepFailed(f"{what} failed (exit {result.exit_code}): {tail or 'no error text'}",
                         exit_code=result.exit_code)
    info = writer.close()
    ctx.log(f"{what}: {info['size']} bytes stored as {name}, sha256 {info['sha256']}")
    return info


def stream_from_storage(ctx, conn, command: str, name: str, what: str, *, markers: bool) -> None:
    source = backups.open_read(name)
    try:
        result = conn.feed(ctx.wrap(command), source, timeout=STREAM_TIMEOUT, emit=_not_markers(ctx))
    finally:
        source.close()
    if not result.ok or (markers and not marker_ok(result.stderr)):
        tail = " / ".join(result.stderr.strip().splitlines()[-4:])
        raise StepFailed(f"{what} failed (exit {result.exit_code}): {tail or 'no error text'}",
                         exit_code=result.exit_code)
    ctx.log(f"{what}: done")


def _not_markers(ctx):
    def emit(stream: str, line: str) -> None:
        if not line.startswith("jcc-exit="):
            ctx.emit(stream, line)

    return emit


# -- backup ---------------------------------------------------------------------------------------------

class _Work(Change):
    """The step's work, as its one change (a dry run lists it and does nothing)."""

    def __init__(self, description: str, work):
        super().__init__(description=description)
        self.work = work

    def apply(self, ctx, conn=None):
        ctx.log(f"→ {self.description}")
        self.work(ctx)


class _OperationStep(Step):
    in_default_plan = False
    layer = "backups"

    def probe(self, ctx):
        return [_Work(self.describe(ctx), self.work)]

    def describe(self, ctx) -> str:
        return self.title

    def work(self, ctx) -> None:
        raise NotImplementedError


@register
class BackupDatabase(_OperationStep):
    key = "backup.database"
    title = "Dump the shared database into the backup store"
    hint = "Read the dump's error above: the database must be running and the login allowed (mysqldump)."

    def targets(self, cluster):
        return [database_source(cluster)[0]]

    def work(self, ctx):
        backup = backups.current_backup(ctx.cluster)
        node, managed = database_source(ctx.cluster)
        name = backups.part_name(ctx.cluster.name, backup.backup_id, "database")
        with _Secrets(ctx, ctx.conn, ctx.cluster, managed) as tmp:
            info = stream_to_storage(ctx, ctx.conn, dump_command(ctx.cluster, managed, tmp), name, "database dump")
        backups.record_part(backup, "database", info)


@register
class BackupFiles(_OperationStep):
    key = "backup.files"
    title = "Archive the shared directory into the backup store"
    hint = "Read tar's error above: the directory must exist and be readable by its owner."

    def targets(self, cluster):
        return [files_source(cluster)[0]]

    def work(self, ctx):
        backup = backups.current_backup(ctx.cluster)
        _, directory = files_source(ctx.cluster)
        name = backups.part_name(ctx.cluster.name, backup.backup_id, "files")
        # GNU tar exits 1 when a file changed while it was read (Joget writes servers.json): kept, said in the log.
        info = stream_to_storage(ctx, ctx.conn, tar_command(directory), name, f"archive of {directory}",
                                 allowed=(0, 1))
        backups.record_part(backup, "files", info)


@register
class BackupDesiredState(_OperationStep):
    key = "backup.desired_state"
    title = "The console's desired state of the cluster (inventory, no secrets)"

    def work(self, ctx):
        backup = backups.current_backup(ctx.cluster)
        doc = dump_inventory(ctx.cluster, include_secrets=False)
        name = backups.part_name(ctx.cluster.name, backup.backup_id, "desired_state")
        writer = backups.HashingWriter(name)
        writer.write(json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n")
        backups.record_part(backup, "desired_state", writer.close())


@register
class BackupManifest(_OperationStep):
    key = "backup.manifest"
    title = "Manifest: sizes, checksums, Joget version, WARs"
    depends_on = ("backup.database", "backup.files", "backup.desired_state")

    def work(self, ctx):
        backup = backups.current_backup(ctx.cluster)
        backup.refresh_from_db()
        missing = [p for p in backups.DATA_PARTS if p not in backup.parts]
        if missing:
            raise StepFailed(f"parts missing: {', '.join(missing)}")
        db = ctx.cluster.layer("shared_database")
        manifest = backups.build_manifest(
            cluster_name=ctx.cluster.name, backup_id=backup.backup_id, joget_version=ctx.cluster.joget_version,
            parts=backup.parts, wars=self._wars(ctx), created=backup.created.isoformat(),
            finished=timezone.now().isoformat(),
            database={"engine": db.engine, "name": db.name, "dump": f"mysqldump {DUMP_OPTIONS} | gzip"},
        )
        data = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
        name = backups.part_name(ctx.cluster.name, backup.backup_id, "manifest")
        writer = backups.HashingWriter(name)
        writer.write(data)
        info = writer.close()
        backups.record_part(backup, "manifest", info)
        Backup.objects.filter(pk=backup.pk).update(manifest=manifest, state=Backup.State.COMPLETE,
                                                   finished=timezone.now())
        ctx.note(f"backup {backup.backup_id}: {sum(p['size'] for p in manifest['parts'].values())} bytes, "
                 f"manifest sha256 {hashlib.sha256(data).hexdigest()}")

    @staticmethod
    def _wars(ctx) -> dict:
        out = {}
        for node in ctx.cluster.app_servers():
            conn = ctx.connect(node)
            for filename, _kind in wars(ctx.cluster):
                path = f"{tt.base(node)}/webapps/{filename}"
                r = ctx.run(tt.as_service_user(node, f"sha256sum -- {quote(path)}"), conn=conn, quiet=True,
                            timeout=120)
                out.setdefault(node.name, {})[filename] = r.stdout.split()[0] if r.ok and r.stdout.split() else ""
        return out


# -- restore --------------------------------------------------------------------------------------------

@register
class RestoreCheck(_OperationStep):
    key = "restore.check"
    title = "Check the backup's checksums against its manifest"
    hint = "A damaged or edited backup is never restored: pick another backup."
    depends_on = ("backup.manifest",)  # when the run backs up first (the cluster's setting); else none

    def work(self, ctx):
        restore = backups.current_restore(ctx.cluster)
        if restore.pre_backup:
            ctx.log(f"the cluster was backed up first: backup {restore.pre_backup}")
        result = backups.verify(restore.backup, log=ctx.log)
        if not result.ok:
            raise StepFailed(f"Backup {restore.backup.backup_id} refused, nothing was changed: "
                             + "; ".join(result.problems))
        ctx.note(f"✓ checksums: every part of {restore.backup.backup_id} matches its manifest")


@register
class RestoreStop(_OperationStep):
    key = "restore.stop"
    title = "Stop the app servers (a database restore cannot roll)"
    depends_on = ("restore.check",)

    def targets(self, cluster):
        return list(cluster.app_servers())

    def work(self, ctx):
        tt.stop(ctx)


@register
class RestoreDatabase(_OperationStep):
    key = "restore.database"
    title = "Load the database dump"
    depends_on = ("restore.stop",)
    hint = "The app servers are stopped. Read the client's error above, then Retry this step."

    def targets(self, cluster):
        return [database_source(cluster)[0]]

    def work(self, ctx):
        restore = backups.current_restore(ctx.cluster)
        _, managed = database_source(ctx.cluster)
        name = backups.part_name(ctx.cluster.name, restore.backup.backup_id, "database")
        with _Secrets(ctx, ctx.conn, ctx.cluster, managed) as tmp:
            stream_from_storage(ctx, ctx.conn, load_command(ctx.cluster, managed, tmp), name, "database load",
                                markers=True)


@register
class RestoreFiles(_OperationStep):
    key = "restore.files"
    title = "Unpack the shared directory (files not in the backup kept, unless exact)"
    depends_on = ("restore.stop",)
    hint = "The app servers are stopped. Read tar's error above, then Retry this step."

    def targets(self, cluster):
        return [files_source(cluster)[0]]

    def work(self, ctx):
        restore = backups.current_restore(ctx.cluster)
        _, directory = files_source(ctx.cluster)
        name = backups.part_name(ctx.cluster.name, restore.backup.backup_id, "files")
        stream_from_storage(ctx, ctx.conn, untar_command(directory, restore.exact), name,
                            f"unpack into {directory}" + (" (exact)" if restore.exact else ""), markers=False)


@register
class RestoreStart(_OperationStep):
    key = "restore.start"
    title = "Start the app servers and wait for Joget"
    depends_on = ("restore.database", "restore.files")

    def targets(self, cluster):
        return list(cluster.app_servers())

    def work(self, ctx):
        tt.start(ctx)
        tt.wait_for_url(ctx, ctx.node, app_url_path(ctx.cluster), contains=ANONYMOUS, timeout=APP_TIMEOUT)


@register
class RestorePostTest(PostDeploymentTest):
    key = "restore.post_test"
    title = "Post-deployment test after the restore"
    depends_on = ("restore.start",)
    in_default_plan = False
