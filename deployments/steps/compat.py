"""What versions a node runs, against the cluster's version profile (nodes/versions.py): the servlet API of the
uploaded jw.war against each app server's Tomcat major, and the Java release. Used by tomcat.install (which
refuses a WAR its Tomcat cannot run before anything on the app servers changes) and by the checklist.

The commands only read: `java -version`, and Tomcat's own ServerInfo class from CATALINA_HOME/lib/catalina.jar
(what `catalina.sh version` prints, without catalina.sh's environment).
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
import zlib
from dataclasses import dataclass

from nodes import versions
from nodes.models import Artifact
from nodes.ssh import quote

from . import tomcat_tools

SCRIPT_TIMEOUT = 60


@dataclass
class NodeVersions:
    java: int          # feature release, 0 when no java answered
    java_text: str     # the first line of `java -version`
    tomcat: int        # Tomcat major, 0 when unknown
    tomcat_text: str   # where it was read (ServerInfo's line, or the archive's name)


def versions_command(home: str) -> str:
    jar = quote(f"{home}/lib/catalina.jar")
    return (f"java -version 2>&1 | head -n 1 | sed 's/^/java=/'; "
            f"if [ -f {jar} ]; then java -cp {jar} org.apache.catalina.util.ServerInfo 2>/dev/null "
            "| grep -E '^Server (version|number):' | sed 's/^/tomcat=/'; fi; true")


def parse_versions(stdout: str, archive_name: str = "") -> NodeVersions:
    java_line, tomcat_lines = "", []
    for line in stdout.splitlines():
        if line.startswith("java="):
            java_line = line[5:].strip()
        elif line.startswith("tomcat="):
            tomcat_lines.append(line[7:].strip())
    tomcat_text = " ".join(tomcat_lines)
    major = versions.tomcat_major(tomcat_text)
    if not major and archive_name:
        # Not unpacked yet: the archive tomcat.install will unpack names its version.
        major, tomcat_text = versions.tomcat_major(archive_name), f"archive {archive_name}"
    return NodeVersions(versions.java_feature(java_line), java_line, major, tomcat_text)


def node_versions(run, node) -> NodeVersions:
    """`run(command) -> result with .stdout` on the node (a step's ctx.run or a connection's run)."""
    archive = Artifact.objects.filter(cluster=node.cluster, kind=Artifact.Kind.TOMCAT_ARCHIVE).first()
    out = run(versions_command(tomcat_tools.home(node))).stdout
    # The node's own CATALINA_HOME wins; the archive only counts where the console unpacks it.
    return parse_versions(out, archive.original_name if archive and not node.catalina_home else "")


def _read_uploaded_war(cluster, read, empty):
    """read(WAR file) of the cluster's uploaded jw.war, and its name; (empty, "") when none is uploaded."""
    art = Artifact.objects.filter(cluster=cluster, kind=Artifact.Kind.JW_WAR).first()
    if art is None:
        return empty, ""
    try:
        return read(art.file.path), art.original_name
    except NotImplementedError:
        # A storage without local paths: zipfile needs a seekable file, so a temporary copy.
        with tempfile.TemporaryFile() as tmp, art.file.open("rb") as src:
            shutil.copyfileobj(src, tmp, 1 << 20)
            tmp.seek(0)
            return read(tmp), art.original_name


def war_servlet_api(cluster) -> tuple[versions.ServletApi, str]:
    """The servlet API of the cluster's uploaded jw.war and its name; unknown ("") when none is uploaded."""
    return _read_uploaded_war(cluster, versions.servlet_api_of_war, versions.ServletApi("", ""))


def war_joget_version(cluster) -> tuple[str, str]:
    """The Joget version inside the cluster's uploaded jw.war ("" when it names none or is no WAR) and its name."""
    def read(f):
        try:
            return versions.war_version(f)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError):
            # Not a WAR, cut short, or an entry compressed in a way zipfile cannot read: it names no version.
            return ""

    return _read_uploaded_war(cluster, read, "")


def servlet_refusal(cluster, node, found: NodeVersions) -> str:
    """The message that stops the deployment on this node (naming both APIs and how to fix it), or ""."""
    api, name = war_servlet_api(cluster)
    why = versions.servlet_mismatch(api, found.tomcat)
    if not why:
        return ""
    return f"{name} on {node.name}: {why} ({found.tomcat_text}). {servlet_fix(node, found)}"


def servlet_fix(node, found: NodeVersions) -> str:
    wants = versions.tomcat_servlet_api(found.tomcat)
    other = "Tomcat 9" if wants == versions.JAKARTA else "Tomcat 10 or newer"
    return (f"Give {node.name} {other} (set its CATALINA_HOME or upload that Tomcat archive), or upload a {wants} "
            "build of jw.war.")


def java_problem(cluster, node, found: NodeVersions) -> str:
    profile = versions.profile_for(cluster.major_version)
    if not found.java:
        return f"no java answers on {node.name}: install Java {profile.java_text()} ({profile.name})."
    if found.java not in profile.java:
        return (f"Java {found.java} on {node.name}; {profile.name} supports Java {profile.java_text()}: install "
                "one of those and put it first on the PATH (or set JAVA_HOME in setenv.sh).")
    return ""
