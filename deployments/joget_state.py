"""What Joget itself records about the cluster, beside what the console knows: the node names in the shared
`servers.json` (stale ones can be removed), the nodes Joget records as licensed (rows of `wf_setup` whose
property or value holds `node::`, read-only from the shared database), and each node's Joget build.

Reads go through the console's one SSH door: files as the owner of their directory (NodeConnection.read_file),
SQL through the MySQL client path the database steps use (steps.mysql.run_client). Only remove_stale writes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from nodes import ssh
from nodes.health import parse_servers_json
from nodes.models import Cluster

from .steps import StepContext, StepFailed, mysql
from .steps import tomcat_tools as tt

WF_SETUP_SQL = ("SELECT property, value FROM wf_setup "
                "WHERE property LIKE '%node::%' OR value LIKE '%node::%' ORDER BY property;\n")
_NODE = re.compile(r"node::([A-Za-z0-9_.-]+)")


@dataclass
class ServersJson:
    names: list[str] | None  # None: missing or in a format the console does not know
    stale: list[str] = field(default_factory=list)
    error: str = ""


def known_names(cluster: Cluster) -> set[str]:
    """The names a node of this cluster can have in servers.json: its jvmRoute (the -Dwflow.name the console
    writes) and its own name."""
    return {n for node in cluster.app_servers() for n in (node.jvm_route, node.name) if n}


def _first(cluster: Cluster):
    node = cluster.app_servers().first()
    if node is None:
        raise StepFailed(f"Cluster {cluster.name} has no app server.")
    return node


def read_servers_json(cluster: Cluster) -> ServersJson:
    path = f"{cluster.wflow_home}/servers.json"
    with ssh.open_connection(_first(cluster)) as conn:
        data = conn.read_file(path)
    if data is None:
        return ServersJson(None, error=f"no {path} (Joget writes it when it starts)")
    names = parse_servers_json(data.decode("utf-8", "replace"))
    if names is None:
        return ServersJson(None, error=f"{path} is in a format this console does not know")
    known = known_names(cluster)
    return ServersJson(names, [n for n in names if n not in known])


def remove_stale(cluster: Cluster, names: list[str]) -> list[str]:
    """Rewrite servers.json without `names` (only names that are no node of the cluster: a running node's
    entry is Joget's own). Only the known format is rewritten; returns what was removed."""
    state = read_servers_json(cluster)
    if state.names is None:
        raise StepFailed(state.error)
    drop = [n for n in names if n in state.stale]
    if not drop:
        return []
    keep = [n for n in state.names if n not in drop]
    with ssh.open_connection(_first(cluster)) as conn:
        # As the service user (the wflow home is its directory); the old file stays as a backup beside it.
        conn.write_file(f"{cluster.wflow_home}/servers.json", json.dumps({"servers": keep}).encode(),
                        owner=tt.OWNER, backup=True)
    return drop


# -- licensed nodes in wf_setup ---------------------------------------------------------------------------

def parse_wf_setup(stdout: str) -> list[tuple[str, str]]:
    """The client's --batch output (tab-separated; \\t \\n \\\\ escaped) -> (property, value) rows."""
    rows = []
    for line in stdout.splitlines():
        prop, _, value = line.partition("\t")
        value = value.replace("\\n", "\n").replace("\\t", "\t").replace("\\\\", "\\")
        rows.append((prop, value))
    return rows


def licensed_names(rows: list[tuple[str, str]]) -> set[str]:
    return {m.group(1) for prop, value in rows for m in _NODE.finditer(f"{prop} {value}")}


def compare_licenses(console: dict[str, bool], joget: set[str]) -> list[dict]:
    """Pure: {node name: activated in the console} and Joget's licensed names -> one row per name, with
    `differs` set where the two disagree."""
    out = []
    for name in sorted(set(console) | joget):
        ours, theirs = console.get(name, False), name in joget
        out.append({"node": name, "console": ours, "joget": theirs, "differs": ours != theirs,
                    "known": name in console})
    return out


def read_wf_setup(cluster: Cluster) -> list[tuple[str, str]]:
    db = cluster.layer("shared_database")
    if db is None:
        raise StepFailed("The cluster has no shared database.")
    node = _first(cluster)
    args = (f"--connect-timeout=5 -h {ssh.quote(db.connect_host)} -P {int(db.port)} -u {ssh.quote(db.user)} "
            f"--database={ssh.quote(db.name)}")
    with ssh.open_connection(node) as conn:
        ctx = StepContext(cluster=cluster, node=node, conn=conn, log=lambda text: None,
                          emit=lambda level, text: None, connect=None)
        r = mysql.run_client(ctx, WF_SETUP_SQL, password=db.password, timeout=30, args=args)
    if not r.ok:
        raise StepFailed(f"wf_setup on {db.connect_host}: {(r.stderr.strip().splitlines() or ['no output'])[-1]}")
    return parse_wf_setup(r.stdout)


# -- builds ------------------------------------------------------------------------------------------------

def build_command(node) -> str:
    app = f"{tt.base(node)}/webapps/{node.cluster.context_path.lstrip('/')}"
    # As the service user: webapps is its directory (a planted symlink reads nothing root alone may read).
    return ssh.as_dir_owner(f"{tt.base(node)}/webapps", (
        f"cat {ssh.quote(app + '/META-INF/MANIFEST.MF')} {ssh.quote(app + '/WEB-INF/standin.properties')} "
        "2>/dev/null | tr -d '\\r' | grep -E '^(Implementation-Version: |version=)' | head -n 1; "
        f"sha256sum -- {ssh.quote(app + '.war')} 2>/dev/null | cut -c1-12; true"))


def parse_build(stdout: str) -> str:
    """'version=8.1' / 'Implementation-Version: 8.1.6' and the WAR's short checksum -> '8.1 (a1b2c3d4e5f6)'."""
    version, digest = "", ""
    for line in stdout.split("\n"):
        line = line.strip()
        if line.startswith(("version=", "Implementation-Version: ")):
            version = re.split(r"[=:] ?", line, maxsplit=1)[1].strip()
        elif re.fullmatch(r"[0-9a-f]{12}", line):
            digest = line
    if not version and not digest:
        return ""
    return f"{version or 'unknown version'}" + (f" ({digest})" if digest else "")


def builds(cluster: Cluster) -> dict[str, str]:
    out = {}
    for node in cluster.app_servers():
        try:
            with ssh.open_connection(node) as conn:
                out[node.name] = parse_build(conn.run(build_command(node), timeout=30).stdout)
        except ssh.SSHError as exc:
            out[node.name] = f"unreadable: {exc}"
    return out


def build_mismatch(found: dict[str, str]) -> bool:
    return len({b for b in found.values() if b and not b.startswith("unreadable")}) > 1
