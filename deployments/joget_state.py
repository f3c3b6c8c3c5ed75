"""What Joget itself records about the cluster, beside what the console knows: the node names in the shared
`servers.json` (stale ones can be removed), the nodes Joget records as licensed (rows of `wf_setup` whose
property or value holds `node::`, read-only from the shared database), and each node's Joget build.

Reads go through the console's one SSH door: files as the owner of their directory (NodeConnection.read_file),
SQL through the MySQL client path the database steps use (steps.mysql.run_client). Only remove_stale writes, as
the owner of the wflow home (NodeConnection.write_file). The pages show the last reading, made by a worker
(`request_read` / `run_read`): no request waits on a node.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from nodes import ssh
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
    shape: str = "array"  # what Joget writes (a JSON array); "object": {"servers": [...]}, kept when rewritten
    extra: dict = field(default_factory=dict)  # the object's other keys, kept when rewritten


def parse_servers(text: str) -> tuple[list[str], str, dict] | None:
    """servers.json -> (names, shape, other keys); None when the format is unknown. Joget (ServerUtil) writes a
    JSON array of names with Gson; an object {"servers": [...]} is also read (older stand-ins wrote one)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, list) and all(isinstance(s, str) for s in data):
        return data, "array", {}
    if isinstance(data, dict) and isinstance(data.get("servers"), list) \
            and all(isinstance(s, str) for s in data["servers"]):
        return data["servers"], "object", {k: v for k, v in data.items() if k != "servers"}
    return None


def render_servers(state: ServersJson, names: list[str]) -> bytes:
    if state.shape == "object":
        return json.dumps({**state.extra, "servers": names}).encode()
    return json.dumps(names).encode()


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
    parsed = parse_servers(data.decode("utf-8", "replace"))
    if parsed is None:
        return ServersJson(None, error=f"{path} is in a format this console does not know")
    names, shape, extra = parsed
    known = known_names(cluster)
    return ServersJson(names, [n for n in names if n not in known], shape=shape, extra=extra)


def remove_stale(cluster: Cluster, names: list[str]) -> list[str]:
    """Rewrite servers.json without `names` (only names that are no node of the cluster: a running node's
    entry is Joget's own), in the format it was in. Returns what was removed: [] when nothing was to remove,
    and then the file is not touched."""
    state = read_servers_json(cluster)
    if state.names is None:
        raise StepFailed(state.error)
    drop = [n for n in dict.fromkeys(names) if n in state.stale]
    if not drop:
        return []
    keep = [n for n in state.names if n not in drop]
    path = f"{cluster.wflow_home}/servers.json"
    with ssh.open_connection(_first(cluster)) as conn:
        # No owner given: whoever controls the wflow home (the service user, or the share's owner) writes it,
        # never root into a directory another user can change; the old file stays as a backup beside it.
        conn.write_file(path, render_servers(state, keep), backup=True)
    after = read_servers_json(cluster)
    if after.names is None or any(n in after.names for n in drop):
        raise StepFailed(f"{path} still lists {', '.join(drop)} after the rewrite: a node rewrote it meanwhile; "
                         "read it again and retry.")
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


# -- the last reading, made by a worker ----------------------------------------------------------------------

FRESH_SECONDS = 60  # a page opened within this of the last reading shows it without reading again
LOST_SECONDS = 180  # a read or removal still "busy" after this was lost with its worker: said, and claimable


def snapshot(cluster: Cluster) -> dict:
    """All three readings, each on its own: one that fails says why and the others are still shown."""
    from nodes.secrets import cluster_secrets, masker

    mask = masker(cluster_secrets(cluster))
    out: dict = {}
    try:
        state = read_servers_json(cluster)
        out["servers"] = {"names": state.names, "stale": state.stale, "error": state.error}
    except (StepFailed, ssh.SSHError) as exc:
        out["servers"] = {"names": None, "stale": [], "error": mask(str(exc))}
    out["builds"] = {node: mask(build) for node, build in builds(cluster).items()}
    try:
        out["wf_setup"] = {"names": sorted(licensed_names(read_wf_setup(cluster))), "error": ""}
    except (StepFailed, ssh.SSHError) as exc:
        out["wf_setup"] = {"names": None, "error": mask(str(exc))}
    return out


def records_of(cluster: Cluster):
    from .models import JogetRecords

    return JogetRecords.objects.get_or_create(cluster=cluster)[0]


def _claim(records, busy: str, *, take_lost: bool = True) -> bool:
    """Atomically: only one read or removal at a time per cluster (a lost one is claimable again, by a request
    made on purpose: a page that only opens must not hide a missing worker by queueing forever)."""
    from django.db.models import Q
    from django.utils import timezone

    from .models import JogetRecords

    now = timezone.now()
    lost = now - timezone.timedelta(seconds=LOST_SECONDS)
    free = Q(busy=JogetRecords.Busy.IDLE) | (Q(busy_since__lt=lost) if take_lost else Q(pk__in=[]))
    claimed = JogetRecords.objects.filter(pk=records.pk).filter(free).update(busy=busy, busy_since=now)
    return claimed == 1


def request_read(cluster: Cluster, *, force: bool = False) -> bool:
    """Queue a reading unless a fresh one exists (or `force`) or one is under way; True when queued."""
    from django.db import transaction
    from django.utils import timezone

    from .models import JogetRecords
    from .tasks import read_joget_records

    records = records_of(cluster)
    fresh = records.read_at and (timezone.now() - records.read_at).total_seconds() < FRESH_SECONDS
    if (fresh and not force) or not _claim(records, JogetRecords.Busy.READING, take_lost=force):
        return False
    transaction.on_commit(lambda: read_joget_records.delay(cluster.pk))
    return True


def _finish(cluster_id: int, reading: dict | None, **fields) -> None:
    from django.utils import timezone

    from .models import JogetRecords

    if reading is not None:
        fields.update(reading=reading, read_at=timezone.now())
    JogetRecords.objects.filter(cluster_id=cluster_id).update(busy=JogetRecords.Busy.IDLE, busy_since=None, **fields)


def run_read(cluster_id: int) -> None:
    cluster = Cluster.objects.get(pk=cluster_id)
    reading = None
    try:
        reading = snapshot(cluster)
    finally:
        _finish(cluster_id, reading)


def request_remove(cluster: Cluster, name: str, username: str) -> bool:
    """Queue the removal of one stale name from servers.json; False when a read or removal is under way."""
    from django.db import transaction

    from .models import JogetRecords
    from .tasks import remove_stale_server

    if not _claim(records_of(cluster), JogetRecords.Busy.REMOVING):
        return False
    transaction.on_commit(lambda: remove_stale_server.delay(cluster.pk, name, username))
    return True


def run_remove(cluster_id: int, name: str, username: str) -> str:
    """Remove `name` if it is (still) a stale entry, audit what was found and done, and read everything again."""
    from nodes import audit

    cluster = Cluster.objects.get(pk=cluster_id)
    outcome, reading = "", None
    try:
        try:
            removed = remove_stale(cluster, [name])
            outcome = (f"servers.json: removed the stale entry {name!r}" if removed else
                       f"servers.json: nothing changed, {name!r} is not a stale entry in it (already removed, or a "
                       "node of the cluster)")
        except (StepFailed, ssh.SSHError) as exc:
            outcome = f"servers.json: {name!r} not removed: {exc}"
        audit.record(None, audit.Action.CLUSTER_CHANGED, target=cluster, details=outcome, username=username)
        reading = snapshot(cluster)
    finally:
        _finish(cluster_id, reading, last_removal=outcome[:500])
    return outcome


# -- what the page shows -----------------------------------------------------------------------------------

def panel(cluster: Cluster) -> dict:
    """The panel's rows from the last reading and the console's own License rows (read now, from the database)."""
    from django.utils import timezone

    from licensing.models import License

    records = records_of(cluster)
    reading = records.reading or {}
    lost = bool(records.busy and records.busy_since
                and (timezone.now() - records.busy_since).total_seconds() > LOST_SECONDS)
    servers = reading.get("servers") or {}
    found = reading.get("builds") or {}
    counts: dict[str, int] = {}
    for _node, build in sorted(found.items()):  # the most common build; on a tie, the first node's
        if build and not build.startswith("unreadable"):
            counts[build] = counts.get(build, 0) + 1
    usual = max(counts, key=counts.get) if counts else ""
    build_rows = [{"node": node, "build": build, "differs": bool(usual) and build_mismatch(found) and build != usual}
                  for node, build in sorted(found.items())]  # jsonb keeps no key order
    wf = reading.get("wf_setup") or {}
    app_servers = list(cluster.app_servers())
    states = {lic.node_id: lic for lic in License.objects.filter(node__cluster=cluster)}
    license_rows = []
    if wf.get("names") is not None:
        console = {(n.jvm_route or n.name): bool(states.get(n.pk) and states[n.pk].state == License.State.ACTIVATED)
                   for n in app_servers}
        by_route = {(n.jvm_route or n.name): n for n in app_servers}
        for row in compare_licenses(console, set(wf["names"])):
            lic = states.get(by_route[row["node"]].pk) if row["node"] in by_route else None
            license_rows.append({**row, "node_obj": by_route.get(row["node"]),
                                 "console_state": lic.get_state_display() if lic else "no license"})
    return {
        "records": records, "busy": bool(records.busy) and not lost, "lost": lost,
        "servers": servers, "stale": set(servers.get("stale") or []),
        "build_rows": build_rows, "build_mismatch": build_mismatch(found),
        "wf_setup": wf, "license_rows": license_rows,
        "license_differences": sum(1 for r in license_rows if r["differs"]),
    }
