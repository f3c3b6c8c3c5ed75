"""Guide steps 5 and 6: Joget's datasource on the shared directory, its WARs and options on every
app server, then Tomcat (re)started when any of that changed, and the app answering on every node."""

from __future__ import annotations

import difflib
import hashlib
import io
import ipaddress
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from jproperties import Properties

from deployments import warpatch
from nodes import versions, web
from nodes.models import Artifact, SharedDatabase
from nodes.ssh import as_dir_owner, quote

from . import register, tomcat_tools
from .base import AppServerStep, Change, Step, StepFailed, file_diff
from .toolbox import mask_properties

CHECK_PATH = web.ANON_PATH
ANONYMOUS = '"roleAnonymous"'
APP_TIMEOUT = 240.0  # real Joget (Spring, plugins) takes a minute or more to start; the stand-in seconds
PASSWORD_KEYS = ("workflowPassword",)  # the datasource key whose value is a secret


# ---- datasource (pure) ----------------------------------------------------------------------------


def profile(cluster) -> versions.Profile:
    return versions.profile_for(cluster.major_version)


def jdbc_driver(cluster) -> str:
    # Joget bundles MySQL Connector/J (it also talks to MariaDB); the profile names the class its bundle has.
    return profile(cluster).jdbc_driver


def jdbc_url(cluster, db: SharedDatabase) -> str:
    host = tomcat_tools.url_host(db.connect_host)
    # The server hashed the password as UTF-8 (database.schema sends utf8mb4). Connector/J sends it so already;
    # MariaDB's driver would use the JVM's default charset (US-ASCII under a C locale) and fail on non-ASCII.
    options = versions.jdbc_query(profile(cluster), (("passwordCharacterEncoding", "UTF-8"),))
    return f"jdbc:mysql://{host}:{db.port}/{db.name}?{options}"


def properties_bytes(values: dict[str, str]) -> bytes:
    """Java properties as Properties.store writes them (`:` `=` `#` `!` and `\\` escaped, non-ASCII as
    \\uXXXX, ISO-8859-1), without the date comment so that the same values give the same bytes."""
    props = Properties()
    for key, value in values.items():
        props[key] = value
    out = io.BytesIO()
    props.store(out, encoding="iso-8859-1", timestamp=False)
    return out.getvalue()


def datasource_files(cluster, db: SharedDatabase) -> dict[str, bytes]:
    profile = cluster.datasource_profile
    return {
        f"{cluster.wflow_home}/app_datasource.properties": properties_bytes({"currentProfile": profile}),
        f"{cluster.wflow_home}/app_datasource-{profile}.properties": properties_bytes({
            "workflowDriver": jdbc_driver(cluster),
            "workflowUrl": jdbc_url(cluster, db),
            "workflowUser": db.user,
            "workflowPassword": db.password,
            "profileName": "",  # empty, as in Joget's own profile files and template
        }),
    }


# ---- setenv.sh (pure) -----------------------------------------------------------------------------


def render_setenv(cluster, node) -> str:
    """setenv.sh from the cluster's version profile (nodes/versions.py); paths and names are allow-listed model
    fields, so they need no quoting inside "..."."""
    prof = profile(cluster)
    options = versions.jvm_options(prof, wflow_home=cluster.wflow_home, node_name=node.jvm_route,
                                   catalina_home=tomcat_tools.home(node))
    lines = [f"# Written by the Joget cluster console (step joget.setenv) for {prof.name}; a deployment replaces "
             "edits made here.",
             *versions.render_options(options[:1]),
             "# jvmRoute: the stand-in names its node from it when wflow.name is missing.",
             f'CATALINA_OPTS="$CATALINA_OPTS -DjvmRoute={node.jvm_route}"']
    if not _is_ipv6(node.address):
        lines += ["# Tomcat's multicast membership fails on JVMs that prefer IPv6 sockets.",
                  'CATALINA_OPTS="$CATALINA_OPTS -Djava.net.preferIPv4Stack=true"']
    lines += [*versions.render_options(options[1:]), "export CATALINA_OPTS", ""]
    return "\n".join(lines)


def _is_ipv6(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).version == 6
    except ValueError:
        return False


# ---- WARs -----------------------------------------------------------------------------------------


def wars(cluster) -> list[tuple[str, str]]:
    """(file name in webapps, artifact kind): jw.war (named after the context path), and jwdesigner.war for v5."""
    out = [(f"{cluster.context_path.lstrip('/')}.war", Artifact.Kind.JW_WAR)]
    if "jwdesigner" in profile(cluster).wars:
        out.append(("jwdesigner.war", Artifact.Kind.JWDESIGNER_WAR))
    return out


def _cache_dir() -> Path:
    path = Path(getattr(settings, "WAR_CACHE_DIR", "") or Path(tempfile.gettempdir()) / "jcc-war-cache")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _local_copy(artifact: Artifact) -> Path:
    """A seekable local path to the artifact (zipfile needs one); storages without paths are copied once."""
    try:
        return Path(artifact.file.path)
    except NotImplementedError:
        dest = _cache_dir() / f"{artifact.sha256}.src"
        if not dest.exists():
            tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}")
            with artifact.file.open("rb") as src, tmp.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            tmp.replace(dest)
        return dest


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def prepared_war(artifact: Artifact) -> tuple[Path, str, bool]:
    """(local file, sha256, patched?): the artifact itself when its web.xml has <distributable/>, else a
    patched copy, made once per artifact checksum and kept in a cache."""
    src = _local_copy(artifact)
    try:
        if not warpatch.needs_patch(src):
            return src, artifact.sha256, False
        patched = _cache_dir() / f"{artifact.sha256}-distributable.war"
        sidecar = patched.with_name(patched.name + ".sha256")
        if not (patched.exists() and sidecar.exists()):
            warpatch.patch_war(src, patched)
            tmp = sidecar.with_name(f".{sidecar.name}.{uuid.uuid4().hex[:12]}")
            tmp.write_text(_sha256(patched))
            tmp.replace(sidecar)
        return patched, sidecar.read_text().strip(), True
    except warpatch.WarPatchError as exc:
        raise StepFailed(f"{artifact.original_name}: {exc}") from None


def _artifact(cluster, kind: str) -> Artifact:
    art = Artifact.objects.filter(cluster=cluster, kind=kind).first()
    if art is None:
        raise StepFailed(f"No {Artifact.Kind(kind).label} uploaded for cluster {cluster.name}: upload it from the "
                         "Joget bundle first.")
    return art


def remote_sha256(ctx, path: str) -> str:
    """The file's sha256, read by whoever controls its directory (webapps: the service user, who could have
    made the WAR a symlink to a file only root may read; its checksum is shown)."""
    directory = path.rsplit("/", 1)[0] or "/"
    r = ctx.run(as_dir_owner(directory, f"sha256sum -- {quote(path)} 2>/dev/null"), quiet=True, timeout=120)
    return r.stdout.split()[0] if r.ok and r.stdout.split() else ""


# ---- steps ----------------------------------------------------------------------------------------


def _first_app_server(cluster):
    node = cluster.app_servers().first()
    if node is None:
        raise StepFailed(f"Cluster {cluster.name} has no app server to reach the shared directory through.")
    return node


@register
class Datasource(Step):
    key = "joget.datasource"
    title = "Joget datasource in the shared directory"
    layer = "joget"
    hint = ("The shared directory must be mounted at the cluster's wflow home on the app servers and writable "
            "by root there (an NFS export with root_squash refuses the chown: export it with no_root_squash, or "
            f"give the exported directory to the {tomcat_tools.SERVICE_USER} user's uid on the file server).")

    def probe(self, ctx):
        node = _first_app_server(ctx.cluster)
        conn = ctx.connect(node)
        db = ctx.cluster.layer("shared_database")
        if db is None:
            raise StepFailed("The cluster has no shared database: describe it first.")
        wflow = quote(ctx.cluster.wflow_home)
        user = tomcat_tools.SERVICE_USER
        state = ctx.run(f"test -d {wflow} && echo dir; id -u {user} >/dev/null 2>&1 && echo user && "
                        f"runuser -u {user} -- test -w {wflow} && echo writable; true",
                        conn=conn, quiet=True, timeout=30).stdout.split()
        if "dir" not in state:
            raise StepFailed(f"{ctx.cluster.wflow_home} does not exist on {node.name}: mount the shared directory.")
        changes = []
        if "user" not in state:
            changes.append(Change(f"create the service user {user} on {node.name}",
                                  command=tomcat_tools.ensure_user_command()))
        if "writable" not in state:
            # Joget writes servers.json, licenses and app files there as the service user.
            changes.append(Change(f"let {user} write {ctx.cluster.wflow_home}",
                                  command=f"chown {tomcat_tools.OWNER} {wflow}"))
        for path, data in datasource_files(ctx.cluster, db).items():
            current = ctx.read_file(path, conn=conn)
            if current != data:
                changes.append(Change(
                    f"{'write' if current is not None else 'create'} {path}", path=path, content=data, mode="0640",
                    owner=tomcat_tools.OWNER,
                    diff=file_diff(path, mask_properties(current, PASSWORD_KEYS), mask_properties(data, PASSWORD_KEYS)),
                ))
        return changes

    def apply(self, ctx, changes):
        # On the first app server, not on a node of the step's own; commands (user, directory owner) come first.
        conn = ctx.connect(_first_app_server(ctx.cluster))
        for change in changes:
            change.apply(ctx, conn)

    def verify(self, ctx):
        node = _first_app_server(ctx.cluster)
        conn = ctx.connect(node)
        db = SharedDatabase.objects.get(cluster=ctx.cluster)
        user = tomcat_tools.SERVICE_USER
        for path, data in datasource_files(ctx.cluster, db).items():
            if ctx.read_file(path, conn=conn) != data:
                raise StepFailed(f"{path} on {node.name} does not hold what was written.")
            if not ctx.run(f"runuser -u {user} -- test -r {quote(path)}", conn=conn, quiet=True, timeout=30).ok:
                raise StepFailed(f"{user} cannot read {path} on {node.name}.")
        if not ctx.run(f"runuser -u {user} -- test -w {quote(ctx.cluster.wflow_home)}", conn=conn, quiet=True,
                       timeout=30).ok:
            raise StepFailed(f"{user} cannot write {ctx.cluster.wflow_home} on {node.name}.")
        self._same_owner_everywhere(ctx, node, list(datasource_files(ctx.cluster, db)))
        ctx.log(f"datasource profile {ctx.cluster.datasource_profile}: {jdbc_url(ctx.cluster, db)} as {db.user}")


    def _same_owner_everywhere(self, ctx, first, paths: list[str]) -> None:
        """On a real NFS share, file owners travel as numbers: a service user with another uid on another
        app server cannot read the 0640 datasource files written here, and Joget there fails at start.
        Checked on every app server where the user exists already (tomcat_tools.base creates it elsewhere)."""
        user, wflow = tomcat_tools.SERVICE_USER, quote(ctx.cluster.wflow_home)
        readable = " && ".join(f"test -r {quote(p)}" for p in paths)
        ids = {}
        for node in ctx.cluster.app_servers():
            conn = ctx.connect(node)
            r = ctx.run(f"id -u {user} 2>/dev/null && id -g {user} && runuser -u {user} -- sh -c "
                        f"{quote(f'{readable} && test -w {wflow}')} && echo access", conn=conn, quiet=True, timeout=30)
            out = r.stdout.split()
            if not out:
                continue  # no service user there yet
            ids[node.name] = f"{out[0]}:{out[1]}" if len(out) > 1 else out[0]
            if "access" not in out and node.pk != first.pk:
                found = ", ".join(f"{name} {uid}" for name, uid in ids.items())
                raise StepFailed(
                    f"{user} on {node.name} cannot read the datasource files or write {ctx.cluster.wflow_home} "
                    f"written from {first.name} (uid:gid of {user}: {found}). Give {user} the same uid and gid on "
                    f"every app server (usermod -u UID {user}; groupmod -g GID {user}; then chown the Tomcat base).")


@register
class Setenv(AppServerStep):
    layer = "joget"
    key = "joget.setenv"
    title = "Joget options in setenv.sh (wflow.home, wflow.name)"

    def _path(self, node) -> str:
        return f"{tomcat_tools.base(node)}/bin/setenv.sh"

    def probe(self, ctx):
        change = ctx.want_file(self._path(ctx.node), render_setenv(ctx.cluster, ctx.node), mode="0755",
                               owner=tomcat_tools.OWNER)
        return [change] if change else []

    def verify(self, ctx):
        if ctx.read_file(self._path(ctx.node)) != render_setenv(ctx.cluster, ctx.node).encode():
            raise StepFailed(f"{self._path(ctx.node)} on {ctx.node.name} does not hold the planned options.")


@dataclass
class DeployWar(Change):
    """A WAR uploaded from the console's `local` file into webapps, checked against its `sha256`."""

    local: Path | None = None
    sha256: str = ""

    def apply(self, ctx, conn=None):
        # The writer's temporary name in webapps is hidden and does not end in .war: Tomcat's
        # auto-deployer ignores it until the rename.
        ctx.log(f"→ uploading {self.local.name} ({self.local.stat().st_size} bytes) to {ctx.node.name}")
        with self.local.open("rb") as fh:
            ctx.write_file(self.path, fh, mode="0644", owner=tomcat_tools.OWNER, backup=False, sha256=self.sha256,
                           conn=conn)


@register
class Wars(AppServerStep):
    layer = "joget"
    key = "joget.war"
    title = "Joget WARs in webapps"
    hint = "Upload the WARs of the Joget bundle again if they are damaged; check free space in webapps."

    def _planned(self, ctx):
        for name, kind in wars(ctx.cluster):
            art = _artifact(ctx.cluster, kind)
            local, sha, patched = prepared_war(art)
            yield f"{tomcat_tools.base(ctx.node)}/webapps/{name}", art, local, sha, patched

    def probe(self, ctx):
        changes = []
        for remote, art, local, sha, patched in self._planned(ctx):
            now = remote_sha256(ctx, remote)
            if now != sha:
                note = " with <distributable/> added" if patched else ""
                changes.append(DeployWar(f"deploy {art.original_name} as {remote}{note}", path=remote,
                                         diff=f"sha256 {now or '(none)'} → {sha}", local=local, sha256=sha))
        return changes

    def verify(self, ctx):
        for remote, _art, _local, sha, _patched in self._planned(ctx):
            if remote_sha256(ctx, remote) != sha:
                raise StepFailed(f"{remote} on {ctx.node.name} does not have sha256 {sha}.")


def app_url_path(cluster) -> str:
    return f"{cluster.context_path}{CHECK_PATH}"


def app_answers(ctx, node=None) -> bool:
    """One quick GET of the Joget probe URL from the node itself."""
    node = node or ctx.node
    url = quote(tomcat_tools.node_url(node, app_url_path(node.cluster)))
    return ctx.run(f"curl -sS -m 10 {url} | grep -qF -- {quote(ANONYMOUS)}", quiet=True, timeout=60).ok


def _changed_files(stored: str, now: str) -> list[str]:
    diff = [line[1:] for line in difflib.unified_diff(stored.splitlines(), now.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    return sorted({line.split()[-1].rsplit("/", 1)[-1] for line in diff if line.split()})


class RestartTomcat(Change):
    """Tomcat stopped (when it runs) and started again on the step's node."""

    def apply(self, ctx, conn=None):
        ctx.log(f"→ {self.description}")
        running = tomcat_tools.running_pid(ctx) is not None
        if running and ctx.rolling:  # a serving cluster: node by node, out of the balancer while it restarts
            from deployments import rolling

            rolling.roll_node(ctx)
            return
        if running:
            tomcat_tools.stop(ctx)
        tomcat_tools.start(ctx)


@register
class Running(AppServerStep):
    layer = "joget"
    key = "joget.running"
    title = "Tomcat running Joget, answering on every node"
    hint = "Read the end of catalina.out in the log above (and logs/localhost.*.log for the web app)."

    def rolls(self, cluster) -> bool:
        """A cluster that serves restarts node by node (deployments/rolling.py), never all at once."""
        from deployments import rolling

        return rolling.serving(cluster) and rolling.can_roll(cluster)

    def probe(self, ctx):
        pid = tomcat_tools.running_pid(ctx)
        if pid is None:
            return [RestartTomcat("start Tomcat (it is not running)")]
        stored, now = tomcat_tools.stored_fingerprint(ctx), tomcat_tools.current_fingerprint(ctx)
        if stored is None:
            return [RestartTomcat("restart Tomcat: it was started outside the console, its configuration is unknown")]
        if tomcat_tools.started_elsewhere(ctx, pid):
            return [RestartTomcat(f"restart Tomcat: it was restarted outside the console (pid {pid}), the "
                                  "configuration it runs is unknown")]
        if stored != now:
            files = _changed_files(stored, now)
            return [RestartTomcat(f"restart Tomcat: changed since it started: {', '.join(files)}", diff=file_diff(
                "configuration fingerprint", stored.encode(), now.encode()))]
        if not app_answers(ctx):
            return [RestartTomcat(f"restart Tomcat: {app_url_path(ctx.cluster)} does not answer")]
        return []


    def verify(self, ctx):
        if tomcat_tools.running_pid(ctx) is None:
            raise StepFailed(f"Tomcat is not running on {ctx.node.name}.")
        body = tomcat_tools.wait_for_url(ctx, ctx.node, app_url_path(ctx.cluster), contains=ANONYMOUS,
                                         timeout=APP_TIMEOUT)
        ctx.log(f"{tomcat_tools.node_url(ctx.node, app_url_path(ctx.cluster))} → {body}")
