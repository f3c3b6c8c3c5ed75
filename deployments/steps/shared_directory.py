"""Step 1 of the guide: the shared wflow directory (NFS).

Managed mode: the file server exports a directory to the cluster's subnet
(nfs-kernel-server, owner nobody:nogroup, one /etc/exports line, `exportfs -ra`);
every app server installs nfs-common, creates the mount point, gets an /etc/fstab
entry (the guide forgets it, so the share was gone after a reboot) and mounts it.
Existing mode: nothing is changed. In both modes `shared_directory.verify` proves
that every app server sees one and the same writable directory: each writes a
token file and every other one must read it back.

Only /etc/exports and /etc/fstab lines for our path are touched; every other line
of those files is kept as it was.
"""

from __future__ import annotations

import ipaddress
import secrets
import time

from nodes.models import SharedDirectory
from nodes.ssh import as_dir_owner, fact, facts, quote

from . import register
from .base import Change, ManagedStep, Step, StepContext, StepFailed, file_diff
from .toolbox import PATH_SETUP, apt_install, service_control

EXPORT_OPTIONS = "rw,sync,no_subtree_check"  # sync: Joget's config files must survive a file-server crash
FSTAB_TYPE = "nfs"  # lets mount.nfs negotiate v4, then v3
# _netdev: wait for the network at boot. No `nofail`: if the share is missing at boot, Tomcat must not
# quietly start on an empty local directory (each node would then write its own wflow home).
FSTAB_OPTIONS = "defaults,_netdev"
MARK = "# Joget cluster console: shared wflow directory"
CHECK_FILE_PREFIX = ".jcc-share-check-"


def shared_directory(cluster) -> SharedDirectory | None:
    return cluster.layer("shared_directory")


# -- rendering (pure, unit-tested) -----------------------------------------------------------------

def normalize_subnet(subnet: str) -> str:
    return str(ipaddress.ip_network(subnet, strict=False))


def _client_of(spec: str) -> str:
    return spec.split("(", 1)[0]


def render_exports(current: str | None, export_path: str, subnet: str, options: str = EXPORT_OPTIONS) -> str:
    """/etc/exports with our path exported to `subnet`; other lines and other clients of our path are kept."""
    ours = f"{normalize_subnet(subnet)}({options})"
    lines = (current or "").splitlines()
    out, placed = [], False
    for line in lines:
        fields = line.split()
        if not fields or fields[0].startswith("#") or fields[0] != export_path:
            out.append(line)
            continue
        if placed:
            continue  # a second line for the same path would be ambiguous: keep ours only
        others = [f for f in fields[1:] if _client_of(f) != normalize_subnet(subnet)]
        out.append(" ".join([export_path, *others, ours]))
        placed = True
    if not placed:
        if MARK not in out:
            out.append(MARK)
        out.append(f"{export_path} {ours}")
    return "\n".join(out) + "\n"


def nfs_source(address: str, export_path: str) -> str:
    """`host:/path`; an IPv6 host in brackets, or mount.nfs would split it at its first colon."""
    try:
        v6 = ipaddress.ip_address(address).version == 6
    except ValueError:
        v6 = False
    return f"[{address}]:{export_path}" if v6 else f"{address}:{export_path}"


def fstab_line(source: str, mount_point: str) -> str:
    return f"{source} {mount_point} {FSTAB_TYPE} {FSTAB_OPTIONS} 0 0"


def render_fstab(current: str | None, source: str, mount_point: str) -> str:
    """/etc/fstab with one entry for `mount_point` (ours); every other line as it was."""
    ours = fstab_line(source, mount_point)
    out, placed = [], False
    for line in (current or "").splitlines():
        fields = line.split()
        if len(fields) >= 2 and not fields[0].startswith("#") and fields[1] == mount_point:
            if not placed:
                out.append(ours)
                placed = True
            continue
        out.append(line)
    if not placed:
        if MARK not in out:
            out.append(MARK)
        out.append(ours)
    return "\n".join(out) + "\n"


def _unescape_mountinfo(field: str) -> str:
    return field.encode().decode("unicode_escape")


def mount_at(mountinfo: str, mount_point: str) -> tuple[str, str] | None:
    """(source, fstype) of the topmost mount at `mount_point` in /proc/self/mountinfo text, or None."""
    found = None
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if sep and len(fields) >= 5 and len(tail) >= 2 and _unescape_mountinfo(fields[4]) == mount_point:
            found = (_unescape_mountinfo(tail[1]), tail[0])
    return found


def exported_to(exportfs_v: str, export_path: str, subnet: str) -> bool:
    """Whether `exportfs -v` output lists `export_path` for `subnet` (long paths wrap onto a second line)."""
    entries, current = [], ""
    for line in exportfs_v.splitlines():
        if line[:1].isspace():
            current += " " + line.strip()
        else:
            if current:
                entries.append(current)
            current = line.strip()
    if current:
        entries.append(current)
    want = normalize_subnet(subnet)
    for entry in entries:
        fields = entry.split()
        if fields and fields[0] == export_path and any(_client_of(f) == want for f in fields[1:]):
            return True
    return False


# -- steps -----------------------------------------------------------------------------------------

@register
class Export(ManagedStep):
    layer = "shared_directory"
    layer_of = staticmethod(shared_directory)
    key = "shared_directory.export"
    title = "Export the shared directory (NFS server)"
    hint = ("Check `exportfs -v` and `service nfs-kernel-server status` on the file server. Kernel NFS does not "
            "run in most containers: there, share the directory another way and choose mode 'existing'.")

    def _facts(self, ctx: StepContext, d: SharedDirectory) -> dict[str, list[str]]:
        path = quote(d.export_path)
        script = "; ".join([
            PATH_SETUP,
            "command -v exportfs >/dev/null 2>&1 && echo exportfs=1",
            "getent group nogroup >/dev/null 2>&1 && echo nogroup=1",
            f"[ -d {path} ] && echo owner=$(stat -c %U:%G {path})",
            "command -v exportfs >/dev/null 2>&1 && exportfs -v 2>/dev/null | sed 's/^/exported=/'",
            "echo nfsd=$(cat /proc/fs/nfsd/threads 2>/dev/null || echo 0)",
            "true",
        ])
        return facts(ctx.run(script, quiet=True).stdout)

    def probe(self, ctx):
        d = shared_directory(ctx.cluster)
        f = self._facts(ctx, d)
        changes = []
        if "exportfs" not in f:
            changes.append(Change("install nfs-kernel-server", command=apt_install("nfs-kernel-server"),
                                  timeout=900))
        owner = "nobody:nogroup" if "nogroup" in f or "exportfs" not in f else "nobody:nobody"
        if fact(f, "owner") != owner:
            changes.append(Change(f"create {d.export_path} owned by {owner}",
                                  command=f"mkdir -p {quote(d.export_path)} && chown {owner} {quote(d.export_path)}"))
        current = ctx.read_file("/etc/exports")
        text = current.decode("utf-8", "replace") if current is not None else None
        wanted = render_exports(text, d.export_path, d.client_subnet)
        file_changed = text != wanted
        if file_changed:
            changes.append(Change(f"export {d.export_path} to {normalize_subnet(d.client_subnet)} in /etc/exports",
                                  path="/etc/exports", content=wanted.encode(),
                                  diff=file_diff("/etc/exports", current, wanted.encode())))
        exported = exported_to("\n".join(f.get("exported", [])), d.export_path, d.client_subnet)
        if file_changed or not exported or not self._nfsd_running(f):
            changes.append(Change("start the NFS server and re-export (exportfs -ra)",
                                  command=self._export_command(), timeout=120))
        return changes

    @staticmethod
    def _export_command() -> str:
        start = service_control("start", unit="nfs-kernel-server", initd="nfs-kernel-server")
        return f"{PATH_SETUP}; {start}; exportfs -ra"

    @staticmethod
    def _nfsd_running(f: dict[str, list[str]]) -> bool:
        threads = fact(f, "nfsd", "0").strip()
        return threads.isdigit() and int(threads) > 0

    def verify(self, ctx):
        d = shared_directory(ctx.cluster)
        f = self._facts(ctx, d)
        if not self._nfsd_running(f):
            raise StepFailed(f"the NFS server on {ctx.node.name} runs no nfsd threads (/proc/fs/nfsd/threads): "
                             "it did not start.")
        if not exported_to("\n".join(f.get("exported", [])), d.export_path, d.client_subnet):
            raise StepFailed(f"`exportfs -v` on {ctx.node.name} does not list {d.export_path} for "
                             f"{normalize_subnet(d.client_subnet)}: the NFS server did not take the export.")


class MountShare(Change):
    """`mount <wflow home>` (its /etc/fstab entry), with what its failure means said plainly."""

    def apply(self, ctx, conn=None):
        ctx.log(f"→ {self.description}")
        r = ctx.run(self.command, timeout=self.timeout, conn=conn)
        if r.ok:
            return
        err = (r.stderr or r.stdout).strip().splitlines()
        detail = " / ".join(err[-3:]) or f"exit {r.exit_code}"
        why = ""
        if any("No such device" in line for line in err):
            why = (" 'No such device': this kernel has no NFS client support (a container or sandbox); "
                   "the /etc/fstab entry is in place, but the share cannot be mounted here.")
        elif r.timed_out:
            why = " The mount hung: the file server does not answer on NFS (ports 2049/111)."
        raise StepFailed(f"`mount {ctx.cluster.wflow_home}` failed on {ctx.node.name}: {detail}.{why}",
                         exit_code=r.exit_code)


@register
class Mount(ManagedStep):
    layer = "shared_directory"
    layer_of = staticmethod(shared_directory)
    key = "shared_directory.mount"
    title = "Mount the shared directory (app servers)"
    hint = ("On the app server try `mount <wflow home>` and read its error; on the file server check `exportfs -v` "
            "and that ports 2049 and 111 are open. 'No such device' means this kernel has no NFS client "
            "(containers, sandboxes): share the directory another way and choose mode 'existing'.")

    def managed_targets(self, cluster):
        return list(cluster.app_servers())

    @staticmethod
    def source(cluster) -> str:
        d = shared_directory(cluster)
        return nfs_source(d.node.address, d.export_path)

    def _facts(self, ctx: StepContext) -> tuple[dict[str, list[str]], str]:
        mp = quote(ctx.cluster.wflow_home)
        script = "; ".join([
            PATH_SETUP,
            "command -v mount.nfs >/dev/null 2>&1 && echo nfsclient=1",
            f"[ -d {mp} ] && echo mountpoint=1",
            "true",
        ])
        f = facts(ctx.run(script, quiet=True).stdout)
        mountinfo = ctx.run("cat /proc/self/mountinfo", quiet=True).stdout
        return f, mountinfo

    def probe(self, ctx):
        mp, source = ctx.cluster.wflow_home, self.source(ctx.cluster)
        f, mountinfo = self._facts(ctx)
        changes = []
        if "nfsclient" not in f:
            changes.append(Change("install nfs-common", command=apt_install("nfs-common"), timeout=900))
        current = ctx.read_file("/etc/fstab")
        text = current.decode("utf-8", "replace") if current is not None else None
        wanted = render_fstab(text, source, mp)
        if text != wanted:
            changes.append(Change(f"add the {mp} entry to /etc/fstab (mounted again after a reboot)",
                                  path="/etc/fstab", content=wanted.encode(),
                                  diff=file_diff("/etc/fstab", current, wanted.encode())))
        if "mountpoint" not in f:
            changes.append(Change(f"create the mount point {mp}", command=f"mkdir -p {quote(mp)}"))
        mounted = mount_at(mountinfo, mp)
        if mounted is None:
            changes.append(MountShare(f"mount {source} on {mp}", command=f"mount {quote(mp)}", timeout=180))
        elif not self._is_ours(mounted, source):
            raise StepFailed(f"{mp} on {ctx.node.name} is already a mount of {mounted[0]} ({mounted[1]}), not of "
                             f"{source}. Unmount it (umount {mp}) once nothing uses it, then run this step again.")
        return changes

    @staticmethod
    def _is_ours(mounted: tuple[str, str], source: str) -> bool:
        return mounted[1].startswith("nfs") and mounted[0].rstrip("/") == source.rstrip("/")

    def verify(self, ctx):
        _, mountinfo = self._facts(ctx)
        mounted = mount_at(mountinfo, ctx.cluster.wflow_home)
        if mounted is None or not self._is_ours(mounted, self.source(ctx.cluster)):
            raise StepFailed(f"{ctx.cluster.wflow_home} on {ctx.node.name} is not an NFS mount of "
                             f"{self.source(ctx.cluster)} (found: {mounted or 'nothing mounted'}).")


@register
class Verify(Step):
    key = "shared_directory.verify"
    checks_only = True
    title = "Verify the app servers share one writable directory"
    layer = "shared_directory"
    hint = ("Every app server must see the same directory at the cluster's wflow home: check the mount on the "
            "node named in the message (`findmnt <wflow home>`) and that root may write there.")
    READ_TRIES = 2  # NFS clients may cache a directory listing for a moment

    def applies(self, cluster) -> bool:
        return shared_directory(cluster) is not None

    def verify(self, ctx):
        nodes = list(ctx.cluster.app_servers())
        if not nodes:
            raise StepFailed("The cluster has no app server: nothing shares the directory.")
        home = ctx.cluster.wflow_home
        conns = {n.name: ctx.connect(n) for n in nodes}
        run_id = secrets.token_hex(6)
        tokens = {n.name: secrets.token_hex(16) for n in nodes}
        paths = {name: f"{home}/{CHECK_FILE_PREFIX}{run_id}-{name}" for name in tokens}
        try:
            self._write_tokens(ctx, conns, tokens, paths)
            self._read_tokens(ctx, conns, tokens, paths)
        finally:
            for name, conn in conns.items():
                conn.run(f"rm -f {quote(paths[name])}")
        ctx.log(f"all {len(nodes)} app server(s) read every token: {home} is one shared, writable directory")

    def _write_tokens(self, ctx, conns, tokens, paths) -> None:
        home = ctx.cluster.wflow_home
        problems = []
        for name, conn in conns.items():
            # Written as whoever owns the directory (the service user, as Joget writes there), never
            # through an existing name (noclobber): root never opens a path the service user controls.
            write = f"set -C; printf '%s\\n' {quote(tokens[name])} > {quote(paths[name])}"
            r = ctx.run(f"test -d {quote(home)} || {{ echo 'missing' >&2; exit 3; }}; "
                        f"{as_dir_owner(home, write)}", conn=conn, quiet=True)
            if not r.ok:
                reason = "does not exist" if r.exit_code == 3 else f"is not writable ({r.stderr.strip()[-200:]})"
                problems.append(f"{name}: {home} {reason}")
            else:
                ctx.log(f"[{name}] wrote a token into {home}")
        if problems:
            raise StepFailed("; ".join(problems) + ". Every app server needs the shared directory, mounted "
                             "and writable.")

    def _read_tokens(self, ctx, conns, tokens, paths) -> None:
        home = ctx.cluster.wflow_home
        missing: dict[str, list[str]] = {}
        for reader, conn in conns.items():
            for attempt in range(self.READ_TRIES):
                seen = self._read_all(ctx, conn, paths)
                lost = [w for w in tokens if seen.get(w) != tokens[w]]
                if not lost:
                    break
                if attempt + 1 < self.READ_TRIES:
                    time.sleep(1)
            if lost:
                missing[reader] = lost
            else:
                ctx.log(f"[{reader}] read the tokens of {', '.join(tokens)}")
        if missing:
            where = "; ".join(f"{r} does not see the token written by {', '.join(w)}" for r, w in missing.items())
            mounts = self._describe_mounts(ctx, conns)
            raise StepFailed(f"The app servers do not share one directory at {home}: {where}. "
                             f"What each node has mounted there: {mounts}.")

    @staticmethod
    def _read_all(ctx, conn, paths) -> dict[str, str]:
        script = "; ".join(f"printf '%s=' {quote(w)}; head -c 64 {quote(p)} 2>/dev/null || echo"
                           for w, p in paths.items())
        home = paths[next(iter(paths))].rsplit("/", 1)[0]
        out = ctx.run(as_dir_owner(home, script), conn=conn, quiet=True).stdout
        return {k: v[0].strip() for k, v in facts(out).items()}

    @staticmethod
    def _describe_mounts(ctx, conns) -> str:
        parts = []
        for name, conn in conns.items():
            info = mount_at(ctx.run("cat /proc/self/mountinfo", conn=conn, quiet=True).stdout, ctx.cluster.wflow_home)
            parts.append(f"{name}: {info[0] + ' (' + info[1] + ')' if info else 'no mount of its own'}")
        return ", ".join(parts)
