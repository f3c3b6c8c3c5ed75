"""Guide step 3: Tomcat on every app server.

A node either names an installed Tomcat (`catalina_home`, e.g. Debian's
/usr/share/tomcat10) or gets the cluster's uploaded `tomcat_archive` unpacked at
`<install path>/tomcat`. Either way Joget runs from its own CATALINA_BASE
(`effective_catalina_base`), owned by a service user, started with
`catalina.sh start` (tomcat_tools: no systemd on many of these hosts, none on the testbed).
"""

from __future__ import annotations

from deployments import xmledit
from nodes.models import Artifact
from nodes.ssh import DIR_OWNER_SH, quote

from . import Change, compat, register
from .base import AppServerStep, StepFailed
from .tomcat_tools import (
    ARCHIVE_MARKER,
    BASE_DIRS,
    OWNER,
    SERVICE_USER,
    base,
    conf_source,
    ensure_user_command,
    home,
    server_xml,
    want_xml,
)


def _archive(cluster) -> Artifact | None:
    return Artifact.objects.filter(cluster=cluster, kind=Artifact.Kind.TOMCAT_ARCHIVE).first()


class UnpackArchive(Change):
    """The cluster's Tomcat archive unpacked as the node's CATALINA_HOME (`path`), the old one kept aside."""

    def apply(self, ctx, conn=None):
        node, art = ctx.node, _archive(ctx.cluster)
        h = home(node)
        ctx.log(f"→ uploading {art.original_name} ({art.size} bytes)")
        # The archive waits in a private directory: between its checksum and tar, nobody can swap it.
        with art.file.open("rb") as fh, ctx.conn.staged(fh) as staging:
            script = "; ".join([
                "set -e",
                f"echo {quote(art.sha256 + '  ' + staging)} | sha256sum -c --quiet -",
                f"mkdir -p {quote(h.rsplit('/', 1)[0] or '/')}",
                f"new=$(mktemp -d {quote(h + '.jcc-new-XXXXXX')})",
                # Tomcat's archives hold one top directory (apache-tomcat-X/); tar detects the compression itself.
                f"tar -xf {quote(staging)} -C \"$new\" --strip-components=1 --no-same-owner",
                "test -f \"$new\"/bin/catalina.sh || { echo 'the archive holds no apache-tomcat-*/bin/catalina.sh' "
                ">&2; rm -rf \"$new\"; exit 3; }",
                "chmod 0755 \"$new\" \"$new\"/bin/*.sh",
                f"echo {quote(art.sha256)} > \"$new\"/{ARCHIVE_MARKER}",
                f"if [ -e {quote(h)} ]; then mv -T {quote(h)} \"$(mktemp -u {quote(h + '.bak-XXXXXX')})\"; fi",
                f"mv -T \"$new\" {quote(h)}",
            ])
            ctx.run(script, check=True, timeout=300)


@register
class TomcatInstall(AppServerStep):
    layer = "tomcat"
    key = "tomcat.install"
    title = "Tomcat installed (CATALINA_HOME)"
    hint = ("Give the node an installed Tomcat (CATALINA_HOME, e.g. /usr/share/tomcat10) or upload the "
            "apache-tomcat-X.tar.gz archive; Java must be installed (apt-get install default-jre-headless).")

    def _state(self, ctx) -> set[str]:
        h = quote(home(ctx.node))
        r = ctx.run(
            f"test -f {h}/bin/catalina.sh && echo catalina; test -f {h}/lib/catalina.jar && echo jar; "
            f"test -f {h}/lib/catalina-ha.jar && echo ha; command -v java >/dev/null 2>&1 && echo java; "
            f"sed 's/^/archive=/' {h}/{ARCHIVE_MARKER} 2>/dev/null; true",
            quiet=True, timeout=30,
        )
        return set(r.stdout.split())

    def probe(self, ctx):
        node = ctx.node
        state = self._state(ctx)
        if "java" not in state:
            raise StepFailed(f"No java on {node.name}'s PATH: install a JRE (e.g. apt-get install "
                             "default-jre-headless) before Tomcat.")
        # The first step on an app server: a jw.war this Tomcat cannot run stops here, before anything changes.
        refusal = compat.servlet_refusal(ctx.cluster, node, compat.node_versions(
            lambda cmd: ctx.run(cmd, quiet=True, timeout=compat.SCRIPT_TIMEOUT), node))
        if refusal:
            raise StepFailed(refusal)
        if node.catalina_home:
            missing = [what for what, mark in (("bin/catalina.sh", "catalina"), ("lib/catalina.jar", "jar"),
                                               ("lib/catalina-ha.jar (session replication)", "ha"))
                       if mark not in state]
            if missing:
                raise StepFailed(f"{node.catalina_home} on {node.name} is not a usable Tomcat: no "
                                 f"{', '.join(missing)}. Fix CATALINA_HOME or clear it to use the uploaded archive.")
            return []
        art = _archive(ctx.cluster)
        if art is None:
            raise StepFailed(f"{node.name} has no CATALINA_HOME and no Tomcat archive is uploaded: upload "
                             "apache-tomcat-X.tar.gz, or set CATALINA_HOME to an installed Tomcat.")
        if f"archive={art.sha256}" in state and "catalina" in state:
            return []
        return [UnpackArchive(f"unpack {art.original_name} into {home(node)}", path=home(node),
                              diff=f"archive sha256 {art.sha256}")]

    def verify(self, ctx):
        h = home(ctx.node)
        r = ctx.run(f"env CATALINA_HOME={quote(h)} CATALINA_BASE={quote(h)} sh {quote(h + '/bin/catalina.sh')} "
                    "version </dev/null", timeout=120, quiet=True)
        if "Server version" not in r.stdout:
            raise StepFailed(f"`catalina.sh version` in {h} on {ctx.node.name} did not report a Tomcat version: "
                             f"{(r.stderr or r.stdout).strip()[-300:]}")
        # An archive whose name did not say its version is known only now that it is unpacked.
        refusal = compat.servlet_refusal(ctx.cluster, ctx.node, compat.parse_versions(
            "\n".join(f"tomcat={line}" for line in r.stdout.splitlines() if line.startswith("Server number"))))
        if refusal:
            raise StepFailed(refusal)
        # Only the lines an admin needs (the full output has a harmless SEVERE about Tomcat Native).
        for line in r.stdout.splitlines():
            if line.startswith(("Server version", "JVM Version")):
                ctx.log(f"{h}: {line}")


# Creates the base (root, in a root-only parent, then given to the service user; or the service user itself
# when the parent is its own), then the service user adds the missing directories and conf files: root
# never writes into the base, where that user could have swapped a directory for a link. The conf files
# come from a private copy root made (the distribution's may be readable by root alone).
_CREATE_BASE_SH = r"""set -e
P=${B%/*}; [ -n "$P" ] || P=/
if [ ! -e "$B" ] && [ ! -L "$B" ]; then
  U=$(dir_owner "$P")
  if [ "$U" = root ]; then mkdir -p -- "$B"; chown -h "$OWNER" -- "$B"
  elif [ "$U" = "$SU" ]; then runuser -u "$SU" -- mkdir -p -- "$B"
  else echo "$P belongs to $U: create $B there by hand, owned by $SU" >&2; exit 5; fi
fi
if [ -L "$B" ] || [ ! -d "$B" ] || [ "$(stat -c %U -- "$B")" != "$SU" ]; then
  echo "$B is not a directory of $SU" >&2; exit 5; fi
S=$(mktemp -d); trap 'rm -rf -- "$S"' EXIT
cp -R -- "$SRC/." "$S/conf"; chown -hR "$OWNER" -- "$S/conf"; chmod 0711 -- "$S"
runuser -u "$SU" -- sh -c 'set -e; cd -- "$1"; C=$2; shift 2; mkdir -p -- "$@"
  for f in "$C"/* "$C"/.[!.]*; do [ -e "$f" ] || continue; n=${f##*/}
    [ -e "conf/$n" ] || [ -L "conf/$n" ] || cp -R -- "$f" conf/; done' sh "$B" "$S/conf" """ + " ".join(BASE_DIRS)


def create_base_command(b: str, src: str) -> str:
    return f"B={quote(b)}; SRC={quote(src)}; SU={SERVICE_USER}; OWNER={OWNER}\n{DIR_OWNER_SH}\n{_CREATE_BASE_SH}"


@register
class TomcatBase(AppServerStep):
    layer = "tomcat"
    key = "tomcat.base"
    title = "Tomcat base (CATALINA_BASE), service user, HTTP port"
    hint = "Check the CATALINA_BASE path and that its filesystem is writable; see the step's log."

    def probe(self, ctx):
        node = ctx.node
        b = base(node)
        changes = []
        if not ctx.run(f"id -u {SERVICE_USER}", quiet=True, timeout=30).ok:
            changes.append(Change(f"create the service user {SERVICE_USER}", command=ensure_user_command()))
        src = conf_source(ctx)
        missing = ctx.run(
            " ".join(f"test -d {quote(b + '/' + d)} || echo {d};" for d in BASE_DIRS)
            + f" for f in {quote(src)}/*; do [ -e {quote(b)}/conf/\"$(basename \"$f\")\" ] || basename \"$f\"; done",
            quiet=True, timeout=30,
        ).stdout.split()
        foreign = ctx.run(f"test -d {quote(b)} && find {quote(b)} -maxdepth 2 ! -user {SERVICE_USER} -print "
                          "| head -n 5; true", quiet=True, timeout=60).stdout.split()
        if foreign:
            # A base someone else made: given to the service user before it adds what is missing.
            changes.append(Change(f"give {b} to {SERVICE_USER} ({', '.join(foreign)} …)",
                                  command=f"chown -R -h {OWNER} {quote(b)}"))
        if missing:
            changes.append(Change(f"create {b} ({', '.join(missing)})", command=create_base_command(b, src)))
        on_node = ctx.read_file(server_xml(node))
        current = on_node or ctx.read_file(f"{src}/server.xml")
        xml = want_xml(ctx, server_xml(node), current, xmledit.set_http_port(node.http_port),
                       xmledit.drop_apr_listener, what="server.xml", on_node=on_node)
        if xml:
            xml.description = f"set HTTP port {node.http_port} and drop the AprLifecycleListener in server.xml"
            changes.append(xml)
        return changes

    def verify(self, ctx):
        node = ctx.node
        b = base(node)
        r = ctx.run(" ".join(f"test -d {quote(b + '/' + d)} || echo missing {d};" for d in BASE_DIRS)
                    + f" find {quote(b)} -maxdepth 2 ! -user {SERVICE_USER} -print | head -n 5", timeout=60)
        if r.stdout.strip():
            raise StepFailed(f"{b} on {node.name} is not complete or not owned by {SERVICE_USER}: {r.stdout.strip()}")
        summary = xmledit.server_xml_summary(ctx.read_file(server_xml(node)) or b"")
        if summary["http_port"] != node.http_port or summary["apr_listener"]:
            raise StepFailed(f"{server_xml(node)} does not hold HTTP port {node.http_port} without the APR listener.")

