"""Node health: a check cycle over every node of a cluster, the current state per check, events on change.

One cycle (`run_cycle`) of a cluster:

1. takes the cluster's lease (HealthRun), so two cycles of one cluster never overlap;
2. snapshots what the threads need (addresses, decrypted credentials) in the calling thread: the
   threads never touch the ORM;
3. runs, in one thread pool, per node: one SSH login + one command gathering every fact of that node
   (`gather_script`), the HTTP probe of Joget's anonymous page directly and through the balancer (sticky
   to the node's route), and for the cluster: the database login and the balancer's own page; then
   reads balancer-manager once (after the probes, so it shows what they just met);
4. evaluates one small function per check (`check_*`), pure: facts in, a CheckResult out;
5. writes one HealthSample per node, the latest numbers (NodeHealth), and, for each check whose state
   changed, its CheckState and a HealthEvent, in one transaction;
6. sends the changes by e-mail and webhook when configured (failures are logged, never raised).

The console's address must be allowed to read balancer-manager (LoadBalancer.manager_allow).
"""

from __future__ import annotations

import hashlib
import html.parser
import http.client
import json
import logging
import re
import socket
import struct
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import ssh, web
from .models import (
    CatalinaTail,
    CheckState,
    Cluster,
    HealthEvent,
    HealthRun,
    HealthSample,
    HealthState,
    LoadBalancer,
    Node,
    NodeHealth,
    SharedDatabase,
)
from .secrets import cluster_secrets, masker

log = logging.getLogger(__name__)
S = HealthState

# key -> label, in the order the pages show them.
CHECKS = {
    "ssh": "SSH",
    "host_key": "Host key",
    "load": "Load",
    "memory": "Memory",
    "disk": "Disk /",
    "wflow": "Shared wflow dir",
    "tomcat": "Tomcat process",
    "http": "HTTP direct",
    "balancer_route": "HTTP via balancer",
    "balancer_member": "Balancer member",
    "replication": "Session replication",
    "servers_json": "servers.json",
    "balancer": "Balancer",
    "database": "Database",
}
SEVERITY = {S.OK: 0, S.UNKNOWN: 1, S.WARN: 2, S.BAD: 3}
ANON_PATH = web.ANON_PATH
TOMCAT_MAIN = "org.apache.catalina.startup.Bootstrap"

# Thresholds: (warn, bad).
LOAD_PER_CPU = (1.5, 3.0)
MEM_PCT = (90, 97)
DISK_PCT = (85, 95)
WFLOW_FREE_MB = (1024, 100)  # below these
SLOW_MS = 2000
CATALINA_TAIL_MAX_BYTES = 256 * 1024
SMALLINT_MAX = 32767


def setting(name: str):
    defaults = {"HEALTH_CHECK_INTERVAL": 30.0, "HEALTH_RETENTION_DAYS": 30, "HEALTH_ALERT_EMAIL": [],
                "HEALTH_WEBHOOK_URL": "", "HEALTH_WEBHOOK_TIMEOUT": 5.0, "HEALTH_SSH_TIMEOUT": 5.0,
                "HEALTH_COMMAND_TIMEOUT": 10.0, "HEALTH_HTTP_TIMEOUT": 5.0, "HEALTH_CHECK_THREADS": 32}
    return getattr(settings, name, defaults[name])


@dataclass
class CheckResult:
    state: str
    detail: str = ""


# ---- what the threads get: plain data, no ORM -------------------------------------------------------------


@dataclass
class NodeJob:
    id: int
    name: str
    address: str
    roles: tuple
    jvm_route: str
    http_port: int
    catalina_base: str
    host_key: str
    target: ssh.Target

    @property
    def is_app(self) -> bool:
        return "app_server" in self.roles


@dataclass
class ClusterJob:
    id: int
    name: str
    context_path: str
    wflow_home: str
    nodes: list[NodeJob]
    lb: dict | None = None  # address, port, sticky_cookie, node_id
    db: dict | None = None  # host, port, user, password, name, node_id

    @property
    def app_count(self) -> int:
        return sum(1 for n in self.nodes if n.is_app)


def snapshot(cluster: Cluster) -> ClusterJob:
    nodes = Node.objects.filter(cluster=cluster).select_related("credential", "cluster__credential").order_by("name")
    job = ClusterJob(cluster.id, cluster.name, cluster.context_path, cluster.wflow_home, [
        NodeJob(n.id, n.name, n.address, tuple(n.roles), n.jvm_route, n.http_port, n.effective_catalina_base,
                n.host_key, ssh.Target.for_node(n))
        for n in nodes
    ])
    lb = LoadBalancer.objects.filter(cluster=cluster).select_related("node").first()
    if lb and lb.node_id:
        job.lb = {"address": lb.node.address, "port": lb.http_port, "sticky_cookie": lb.sticky_cookie,
                  "node_id": lb.node_id}
    db = SharedDatabase.objects.filter(cluster=cluster).select_related("node").first()
    if db and db.connect_host:
        job.db = {"host": db.connect_host, "port": db.port, "user": db.user, "password": db.password,
                  "name": db.name, "node_id": db.node_id}
    return job


# ---- SSH: one command per node per cycle ------------------------------------------------------------------


def gather_script(node: NodeJob, wflow_home: str, db_node: bool, lb_node: bool) -> str:
    """Every fact of one node in one round trip. Few processes on purpose (shell builtins read /proc; the
    parsing is done here, in Python): at 500 nodes every process spawned costs a core-second per cycle.

    Output: `key=value` lines, and raw sections between `@@name` and `@@end` lines."""
    q = ssh.quote
    # The bracketed dots keep the pattern from matching this very script's own command line.
    tomcat_re = TOMCAT_MAIN.replace(".", "[.]")
    lines = [
        "export LC_ALL=C",
        'read -r h < /proc/sys/kernel/hostname; echo "hostname=$h"',
        'read -r l1 rest < /proc/loadavg; echo "load1=$l1"',
        'read -r c < /sys/devices/system/cpu/online; echo "cpus_online=$c"',
        'while read -r k v rest; do case "$k" in MemTotal:) echo "mem_total_kb=$v";; '
        'MemAvailable:) echo "mem_avail_kb=$v";; esac; done < /proc/meminfo',
    ]
    if not node.is_app:
        lines.append("echo @@df; df -Pk / 2>/dev/null; echo @@end")
    else:
        lines += [
            f"W={q(wflow_home)}; B={q(node.catalina_base)}",
            'if [ -d "$W" ]; then echo @@df; df -Pk / "$W" 2>/dev/null; echo @@end',
            '  if [ -f "$W/servers.json" ]; then echo @@servers_json; head -c 65536 "$W/servers.json"; echo; '
            "echo @@end; else echo servers_json_missing=1; fi",
            "else echo wflow_missing=1; echo @@df; df -Pk / 2>/dev/null; echo @@end; fi",
            f"P=$(pgrep -d, -f '{tomcat_re}')",
            'if [ -n "$P" ]; then echo @@procs; ps -ww -o pid=,etimes=,args= -p "$P"; echo @@end; fi',
            # Read as the logs directory's owner: the service user may have made catalina.out a symlink.
            ssh.DIR_OWNER_SH + '\nL="$B/logs/catalina.out"',
            'if [ -f "$L" ]; then echo @@repl; as_dir_owner "$B/logs" tail -c 4000000 -- "$L" | grep -aE '
            "'Replication member added|Received member disappeared|Starting service \\[|Server version name' "
            "| tail -n 200; echo @@end; else echo catalina_out_missing=1; fi",
        ]
    if db_node:
        lines.append("if pgrep -x 'mariadbd|mysqld' >/dev/null; then echo db_process=1; else echo db_process=0; fi")
    if lb_node:
        lines.append("if pgrep -x 'apache2|httpd' >/dev/null; then echo lb_process=1; else echo lb_process=0; fi")
    lines.append("exit 0")
    return "\n".join(lines)


def _sections(stdout: str) -> tuple[dict, dict]:
    facts, sections, current = {}, {}, None
    for line in stdout.splitlines():
        if line.startswith("@@"):
            name = line[2:].strip()
            current = None if name == "end" else sections.setdefault(name, [])
        elif current is not None:
            current.append(line)
        else:
            key, sep, value = line.partition("=")
            if sep:
                facts[key.strip()] = value.strip()
    return facts, sections


def _df(lines: list[str]) -> list[tuple[int, int]]:
    """(used %, available KB) per data line of `df -Pk`."""
    rows = []
    for line in lines[1:]:
        parts = line.split()
        if len(parts) >= 6 and parts[4].endswith("%") and parts[3].isdigit():
            rows.append((int(parts[4][:-1]), int(parts[3])))
    return rows


def tomcat_process(lines: list[str], catalina_base: str) -> dict:
    """The Tomcat of this node among `ps pid etimes args` lines: the one with -Dcatalina.base=<its base>."""
    want = f"-Dcatalina.base={catalina_base}"
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and want in parts[2:]:
            found = {"tomcat_pid": parts[0], "tomcat_uptime": parts[1]}
            name = next((a.split("=", 1)[1] for a in parts[2:] if a.startswith("-Dwflow.name=")), "")
            if name:
                found["wflow_name"] = name
            return found
    return {}


def count_cpus(online: str) -> int:
    """`0-3,8-11` (the kernel's list of online CPUs) -> 8."""
    total = 0
    for part in online.split(","):
        low, _, high = part.partition("-")
        if low.strip().isdigit():
            total += int(high) - int(low) + 1 if high.strip().isdigit() else 1
    return total or 1


def parse_gather(stdout: str, catalina_base: str = "") -> dict:
    facts, sections = _sections(stdout)
    if "cpus_online" in facts:
        facts["cpus"] = str(count_cpus(facts.pop("cpus_online")))
    try:
        total, avail = int(facts.pop("mem_total_kb")), int(facts.pop("mem_avail_kb"))
        facts["mem_pct"] = str((total - avail) * 100 // total)
    except (KeyError, ValueError, ZeroDivisionError):
        pass
    df = _df(sections.get("df", []))
    if df:
        facts["disk_pct"] = str(df[0][0])
    if len(df) > 1:
        facts["wflow_free_kb"] = str(df[1][1])
    if "servers_json" in sections:
        facts["servers_json"] = "\n".join(sections["servers_json"]).strip()
    facts.update(tomcat_process(sections.get("procs", []), catalina_base))
    facts["repl"] = sections.get("repl", [])
    return facts


@dataclass
class Gathered:
    ok: bool = False
    ssh_ms: int | None = None
    facts: dict = field(default_factory=dict)
    error: str = ""
    kind: str = ""  # mismatch | unpinned | unreachable | config | timeout | internal


def gather(target: ssh.Target, script: str, catalina_base: str = "") -> Gathered:
    conn = ssh.open_connection(target, connect_timeout=setting("HEALTH_SSH_TIMEOUT"))
    t0 = time.monotonic()
    try:
        conn.open()
        ms = _ms(t0)
        result = conn.run(script, timeout=setting("HEALTH_COMMAND_TIMEOUT"))
    except ssh.HostKeyMismatch as exc:
        return Gathered(error=str(exc), kind="mismatch")
    except ssh.HostKeyNotPinned as exc:
        return Gathered(error=str(exc), kind="unpinned")
    except ssh.ConnectFailed as exc:
        return Gathered(error=str(exc), kind="unreachable")
    except ssh.SSHError as exc:
        return Gathered(error=str(exc), kind="config")
    finally:
        conn.close()
    if result.timed_out:
        return Gathered(ssh_ms=ms, error=f"the health command timed out after {setting('HEALTH_COMMAND_TIMEOUT'):g} s",
                        kind="timeout")
    return Gathered(ok=True, ssh_ms=ms, facts=parse_gather(result.stdout, catalina_base))


def _ms(t0: float) -> int:
    return min(SMALLINT_MAX, round((time.monotonic() - t0) * 1000))


# ---- probes from the console ------------------------------------------------------------------------------


@dataclass
class Probe:
    ok: bool
    ms: int | None = None
    status: int | None = None
    detail: str = ""
    body: bytes = b""
    partial: bool = False  # reached, but not everything could be verified


def http_get(host: str, port: int, path: str, headers: dict | None = None) -> Probe:
    r = web.get(host, port, path, timeout=setting("HEALTH_HTTP_TIMEOUT"), headers=headers)
    if r.status is None:
        return Probe(False, detail=r.error)
    return Probe(r.status == 200, min(SMALLINT_MAX, r.ms), r.status, f"HTTP {r.status}", r.body)


def probe_joget(host: str, port: int, context_path: str, headers: dict | None = None) -> Probe:
    """Joget's anonymous JSON page: up means HTTP 200 and a `username` in the JSON."""
    p = http_get(host, port, context_path + ANON_PATH, headers)
    if p.status == 200 and b'"username"' not in p.body:
        p.ok, p.detail = False, "HTTP 200 but not Joget's JSON (no username)"
    return p


# MySQL/MariaDB client protocol, just enough to log in and ping: a probe that only opened a TCP
# connection and left would count as a handshake error, and max_connect_errors of them block the console.
CLIENT_CAPS = 0x1 | 0x8 | 0x200 | 0x8000 | 0x80000  # long password, with db, protocol 41, secure conn, plugin auth


def _mysql_read(sock) -> tuple[int, bytes]:
    head = _recv_exact(sock, 4)
    length = head[0] | head[1] << 8 | head[2] << 16
    return head[3], _recv_exact(sock, length)


def _recv_exact(sock, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buf += chunk
    return buf


def _mysql_send(sock, seq: int, payload: bytes) -> None:
    sock.sendall(struct.pack("<I", len(payload))[:3] + bytes([seq & 0xFF]) + payload)


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def mysql_scramble(plugin: str, password: str, nonce: bytes) -> bytes:
    if not password:
        return b""
    pw = password.encode()
    if plugin == "caching_sha2_password":
        h1 = hashlib.sha256(pw).digest()
        return _xor(h1, hashlib.sha256(hashlib.sha256(h1).digest() + nonce).digest())
    # mysql_native_password: the protocol mandates SHA-1; nothing is stored with it.
    h1 = hashlib.sha1(pw).digest()  # noqa: S324
    return _xor(h1, hashlib.sha1(nonce + hashlib.sha1(h1).digest()).digest())  # noqa: S324


def parse_greeting(payload: bytes) -> tuple[str, bytes, str]:
    """(server version, 20-byte nonce, auth plugin) from a protocol-10 greeting."""
    if payload[:1] == b"\xff":
        raise MySQLError(_mysql_error(payload))
    if payload[:1] != b"\x0a":
        raise MySQLError("not a MySQL/MariaDB server (unexpected greeting)")
    end = payload.index(b"\0", 1)
    version = payload[1:end].decode(errors="replace")
    pos = end + 1 + 4
    nonce = payload[pos:pos + 8]
    pos += 8 + 1 + 2 + 1 + 2 + 2
    auth_len = payload[pos]
    pos += 1 + 10
    nonce += payload[pos:pos + max(13, auth_len - 8)].rstrip(b"\0")[:12]
    pos += max(13, auth_len - 8)
    plugin = payload[pos:].split(b"\0", 1)[0].decode() or "mysql_native_password"
    return version, nonce, plugin


class MySQLError(Exception):
    pass


class LoginUnverified(MySQLError):
    """MySQL 8 asks for the password over TLS (or RSA) until the user's first login since its start."""


def _mysql_error(payload: bytes) -> str:
    code = struct.unpack("<H", payload[1:3])[0]
    msg = payload[9:] if payload[3:4] == b"#" else payload[3:]
    return f"error {code}: {msg.decode(errors='replace')}"


def _login_response(user: str, database: str, plugin: str, scramble: bytes) -> bytes:
    return (struct.pack("<IIB", CLIENT_CAPS, 1 << 24, 45) + b"\0" * 23 + user.encode() + b"\0"
            + bytes([len(scramble)]) + scramble + database.encode() + b"\0" + plugin.encode() + b"\0")


def _mysql_auth(sock, seq: int, payload: bytes, password: str) -> None:
    """Follow the server's answers to our login until OK; raise MySQLError on refusal."""
    for _ in range(4):
        kind = payload[:1]
        if kind == b"\x00":
            return
        if kind == b"\xff":
            raise MySQLError(_mysql_error(payload))
        if kind == b"\xfe":  # switch to another plugin, with a new nonce
            plugin, _, nonce = payload[1:].partition(b"\0")
            _mysql_send(sock, seq + 1, mysql_scramble(plugin.decode(), password, nonce.rstrip(b"\0")))
        elif payload[:2] == b"\x01\x03":  # caching_sha2 fast path accepted: OK follows
            pass
        elif payload[:2] == b"\x01\x04":
            raise LoginUnverified("reached; the login needs caching_sha2 full authentication (TLS): not verified")
        else:
            raise MySQLError(f"unexpected answer to the login (0x{payload[:1].hex()})")
        seq, payload = _mysql_read(sock)
    raise MySQLError("the login did not finish")


def mysql_ping(host: str, port: int, user: str, password: str, database: str) -> Probe:
    """Log in (as the cluster's Joget user, to its database), ping, quit: reachable and usable."""
    t0 = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=setting("HEALTH_HTTP_TIMEOUT")) as sock:
            seq, payload = _mysql_read(sock)
            version, nonce, plugin = parse_greeting(payload)
            _mysql_send(sock, seq + 1, _login_response(user, database, plugin, mysql_scramble(plugin, password, nonce)))
            seq, payload = _mysql_read(sock)
            _mysql_auth(sock, seq, payload, password)
            _mysql_send(sock, 0, b"\x0e")  # COM_PING
            _, payload = _mysql_read(sock)
            if payload[:1] != b"\x00":
                raise MySQLError("ping refused")
            _mysql_send(sock, 0, b"\x01")  # COM_QUIT: a clean goodbye, not an aborted connection
    except LoginUnverified as exc:
        return Probe(True, _ms(t0), detail=str(exc), partial=True)
    except MySQLError as exc:
        return Probe(False, _ms(t0), detail=str(exc))
    except (OSError, ValueError, IndexError, struct.error) as exc:
        return Probe(False, detail=f"{host}:{port}: {web.describe_error(exc, setting('HEALTH_HTTP_TIMEOUT'))}")
    return Probe(True, _ms(t0), detail=f"{user}@{database} logged in ({version})")


# ---- balancer-manager ---------------------------------------------------------------------------------------


class _Tables(html.parser.HTMLParser):
    """Rows of cell texts of every <table>, with the last heading seen before each table."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables: list[tuple[str, list[list[str]]]] = []
        self._heading, self._in_h, self._row, self._cell = "", False, None, None

    def handle_starttag(self, tag, attrs):
        if tag in ("h1", "h2", "h3"):
            self._in_h, self._heading = True, ""
        elif tag == "table":
            self.tables.append((self._heading, []))
        elif tag == "tr" and self.tables:
            self._row = []
            self.tables[-1][1].append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("h1", "h2", "h3"):
            self._in_h = False
        elif tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        elif self._in_h:
            self._heading += data


def parse_balancer_manager(page: str) -> dict[str, dict]:
    """route -> {url, status, balancer} from Apache's balancer-manager page (the member tables)."""
    parser = _Tables()
    parser.feed(page)
    members = {}
    for heading, rows in parser.tables:
        if not rows or not {"Worker URL", "Route", "Status"} <= set(rows[0]):
            continue
        col = {name: i for i, name in enumerate(rows[0])}
        m = re.search(r"balancer://\S+", heading)
        for row in rows[1:]:
            if len(row) < len(col):
                continue
            route = row[col["Route"]]
            members[route or row[col["Worker URL"]]] = {
                "url": row[col["Worker URL"]], "status": row[col["Status"]], "balancer": m.group(0) if m else ""}
    return members


def member_state(status: str) -> str:
    """Apache's worker status words (Init Ok, Err, Dis, Drn, Stby, HcFl, Stop) to a state."""
    words = set(status.split())
    if words & {"Err", "HcFl"}:
        return S.BAD
    if words & {"Dis", "Drn", "Stop", "Stby"}:
        return S.WARN
    return S.OK if "Ok" in words else S.UNKNOWN


@dataclass
class Manager:
    members: dict | None = None
    error: str = ""


def fetch_balancer_manager(lb: dict) -> Manager:
    p = http_get(lb["address"], lb["port"], "/balancer-manager")
    if not p.ok:
        hint = " (allow this console's address in the load balancer settings)" if p.status == 403 else ""
        return Manager(error=f"balancer-manager: {p.detail}{hint}")
    members = parse_balancer_manager(p.body.decode(errors="replace"))
    if not members:
        return Manager(error="balancer-manager answered without a member table")
    return Manager(members=members)


# ---- pure parsers -------------------------------------------------------------------------------------------

_MEMBER = re.compile(r"tcp://\{([0-9, ]+)\}:(\d+)")
_ADDED = "Replication member added:["
_GONE = "Received member disappeared:["


def member_key(text: str) -> str:
    m = _MEMBER.search(text)
    if m:
        return ".".join(p.strip() for p in m.group(1).split(",")) + ":" + m.group(2)
    return text[:80]


def replication_members(lines: list[str]) -> set[str] | None:
    """Members seen since Tomcat's last start, from catalina.out lines; None if no start was seen."""
    members: set[str] | None = None
    for line in lines:
        if "Starting service [" in line or "Server version name" in line:
            members = set()
        elif members is None:
            continue
        elif _ADDED in line:
            members.add(member_key(line.split(_ADDED, 1)[1]))
        elif _GONE in line:
            members.discard(member_key(line.split(_GONE, 1)[1]))
    return members


def parse_servers_json(text: str) -> list[str] | None:
    """The stand-in's `{"servers": [...]}` (or a bare list); None when the format is unknown."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, dict):
        data = data.get("servers")
    if isinstance(data, list) and all(isinstance(s, str) for s in data):
        return data
    return None


def _to_int(value, scale: float = 1.0) -> int | None:
    try:
        return max(0, round(float(value) * scale))
    except (TypeError, ValueError):
        return None


def _duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


# ---- one function per check ---------------------------------------------------------------------------------


def _no_ssh(g: Gathered) -> CheckResult:
    return CheckResult(S.UNKNOWN, "not checked: no SSH session")


def check_ssh(g: Gathered) -> CheckResult:
    if g.ok:
        slow = g.ssh_ms is not None and g.ssh_ms > SLOW_MS
        return CheckResult(S.WARN if slow else S.OK, f"logged in{' slowly' if slow else ''}")
    if g.kind == "timeout":
        return CheckResult(S.BAD, f"logged in, but {g.error}")
    if g.kind == "mismatch":
        return CheckResult(S.OK, "reachable; not logged in: the host key changed")
    if g.kind in ("unpinned", "config"):
        return CheckResult(S.UNKNOWN, g.error)
    return CheckResult(S.BAD, g.error)


def check_host_key(g: Gathered, node: NodeJob) -> CheckResult:
    if g.kind == "mismatch":
        return CheckResult(S.BAD, g.error)
    if not node.host_key:
        return CheckResult(S.WARN, "no host key pinned: confirm it on the node page")
    if g.ok or g.kind == "timeout":
        return CheckResult(S.OK, f"matches the pinned key {ssh.fingerprint(node.host_key)}")
    return _no_ssh(g)


def check_load(g: Gathered) -> CheckResult:
    if not g.ok:
        return _no_ssh(g)
    try:
        load, cpus = float(g.facts["load1"]), max(1, int(g.facts.get("cpus") or 1))
    except (KeyError, ValueError):
        return CheckResult(S.UNKNOWN, "no load average in the output")
    per_cpu = load / cpus
    state = S.BAD if per_cpu >= LOAD_PER_CPU[1] else S.WARN if per_cpu >= LOAD_PER_CPU[0] else S.OK
    return CheckResult(state, f"load {load:.2f} on {cpus} CPU(s)")


def _pct_check(g: Gathered, key: str, what: str, limits: tuple[int, int]) -> CheckResult:
    if not g.ok:
        return _no_ssh(g)
    pct = _to_int(g.facts.get(key))
    if pct is None:
        return CheckResult(S.UNKNOWN, f"no {what} figure in the output")
    state = S.BAD if pct >= limits[1] else S.WARN if pct >= limits[0] else S.OK
    return CheckResult(state, f"{what} {pct}% used")


def check_memory(g: Gathered) -> CheckResult:
    return _pct_check(g, "mem_pct", "memory", MEM_PCT)


def check_disk(g: Gathered) -> CheckResult:
    return _pct_check(g, "disk_pct", "disk /", DISK_PCT)


def check_wflow(g: Gathered, wflow_home: str) -> CheckResult:
    if not g.ok:
        return _no_ssh(g)
    if g.facts.get("wflow_missing"):
        return CheckResult(S.BAD, f"{wflow_home} does not exist (shared directory not mounted?)")
    free_kb = _to_int(g.facts.get("wflow_free_kb"))
    if free_kb is None:
        return CheckResult(S.UNKNOWN, f"no free-space figure for {wflow_home}")
    free_mb = free_kb // 1024
    state = S.BAD if free_mb < WFLOW_FREE_MB[1] else S.WARN if free_mb < WFLOW_FREE_MB[0] else S.OK
    return CheckResult(state, f"{free_mb:,} MB free in {wflow_home}")


def check_tomcat(g: Gathered, node: NodeJob) -> CheckResult:
    if not g.ok:
        return _no_ssh(g)
    if not g.facts.get("tomcat_pid"):
        return CheckResult(S.BAD, f"no Tomcat process with -Dcatalina.base={node.catalina_base}")
    uptime = _to_int(g.facts.get("tomcat_uptime"))
    up = f", up {_duration(uptime)}" if uptime is not None else ""
    return CheckResult(S.OK, f"pid {g.facts['tomcat_pid']}{up}")


def check_http(p: Probe | None) -> CheckResult:
    if p is None:
        return CheckResult(S.UNKNOWN, "not probed")
    if not p.ok:
        return CheckResult(S.BAD, p.detail)
    return CheckResult(S.WARN if p.ms and p.ms > SLOW_MS else S.OK, p.detail)


def check_replication(g: Gathered, peers: int) -> CheckResult:
    if peers == 0:
        return CheckResult(S.OK, "single app server: nothing to replicate with")
    if not g.ok:
        return _no_ssh(g)
    if not g.facts.get("tomcat_pid"):
        return CheckResult(S.UNKNOWN, "Tomcat is not running")
    if g.facts.get("catalina_out_missing"):
        return CheckResult(S.UNKNOWN, "no catalina.out")
    members = replication_members(g.facts.get("repl", []))
    if members is None:
        return CheckResult(S.UNKNOWN, "no Tomcat start found in the end of catalina.out")
    listed = ", ".join(sorted(members)) or "none"
    state = S.OK if len(members) >= peers else S.WARN
    return CheckResult(state, f"{len(members)} of {peers} other member(s) in catalina.out: {listed}")


def check_servers_json(g: Gathered, node: NodeJob, servers: list[str] | None, seen: bool) -> CheckResult:
    if not g.ok:
        return _no_ssh(g)
    if g.facts.get("wflow_missing"):
        return CheckResult(S.UNKNOWN, "no wflow home")
    if not seen:
        return CheckResult(S.WARN, "no servers.json in wflow home (Joget writes it when it starts)")
    if servers is None:
        return CheckResult(S.UNKNOWN, "servers.json is in a format this console does not know")
    names = {node.name, node.jvm_route, g.facts.get("hostname", ""), g.facts.get("wflow_name", "")} - {""}
    listed = bool(names & set(servers))
    running = bool(g.facts.get("tomcat_pid"))
    if listed and running:
        return CheckResult(S.OK, f"listed ({', '.join(servers)})")
    if listed:
        return CheckResult(S.WARN, "listed, but Tomcat is not running: a stale entry")
    return CheckResult(S.WARN, f"not listed: Joget sees {', '.join(servers) or 'no node'}")


def check_balancer_member(node: NodeJob, manager: Manager | None) -> CheckResult:
    if manager is None or manager.members is None:
        return CheckResult(S.UNKNOWN, manager.error if manager else "balancer-manager not read")
    member = manager.members.get(node.jvm_route)
    if member is None:
        return CheckResult(S.WARN, f"no balancer member with route {node.jvm_route}")
    return CheckResult(member_state(member["status"]), f"{member['status']} ({member['url']})")


def check_balancer(p: Probe | None, manager: Manager | None, g: Gathered | None) -> CheckResult:
    if p is None:
        return CheckResult(S.UNKNOWN, "not probed")
    if not p.ok:
        down = g is not None and g.ok and g.facts.get("lb_process") == "0"
        return CheckResult(S.BAD, p.detail + ("; Apache is not running" if down else ""))
    if manager is not None and manager.error:
        return CheckResult(S.WARN, f"{p.detail}; {manager.error}")
    return CheckResult(S.OK, f"{p.detail} through the balancer")


def check_database(p: Probe | None, g: Gathered | None) -> CheckResult:
    if p is None:
        return CheckResult(S.UNKNOWN, "not probed")
    if p.ok:
        return CheckResult(S.WARN if p.partial else S.OK, p.detail)
    down = g is not None and g.ok and g.facts.get("db_process") == "0"
    return CheckResult(S.BAD, p.detail + ("; no mariadbd/mysqld process on the node" if down else ""))


# ---- evaluate a cycle ---------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one cycle met, per node id (None: the cluster)."""

    gathered: dict = field(default_factory=dict)
    http: dict = field(default_factory=dict)
    via_lb: dict = field(default_factory=dict)
    lb_probe: Probe | None = None
    db_probe: Probe | None = None
    manager: Manager | None = None


def cluster_servers(job: ClusterJob, out: Outcome) -> tuple[list[str] | None, bool]:
    """(servers.json names, whether the file was seen) from the first app server that could read it."""
    for node in job.nodes:
        facts = out.gathered.get(node.id, Gathered()).facts
        if "servers_json" in facts:
            return parse_servers_json(facts["servers_json"]), True
    return None, False


def evaluate(job: ClusterJob, out: Outcome) -> dict[tuple[int | None, str], CheckResult]:
    results: dict[tuple[int | None, str], CheckResult] = {}
    servers, seen = cluster_servers(job, out)
    for node in job.nodes:
        g = out.gathered.get(node.id) or Gathered(error="not checked", kind="internal")
        for key, result in node_checks(job, node, g, out, servers, seen).items():
            results[(node.id, key)] = result
    lb_node = job.lb["node_id"] if job.lb else None
    if job.lb:
        results[(lb_node, "balancer")] = check_balancer(out.lb_probe, out.manager, out.gathered.get(lb_node))
    if job.db:
        db_node = job.db["node_id"]
        results[(db_node, "database")] = check_database(out.db_probe, out.gathered.get(db_node))
    return results


def node_checks(job: ClusterJob, node: NodeJob, g: Gathered, out: Outcome, servers, seen) -> dict[str, CheckResult]:
    checks = {"ssh": check_ssh(g), "host_key": check_host_key(g, node), "load": check_load(g),
              "memory": check_memory(g), "disk": check_disk(g)}
    if node.is_app:
        checks.update(
            wflow=check_wflow(g, job.wflow_home),
            tomcat=check_tomcat(g, node),
            http=check_http(out.http.get(node.id)),
            replication=check_replication(g, job.app_count - 1),
            servers_json=check_servers_json(g, node, servers, seen),
        )
        if job.lb and node.jvm_route:
            checks["balancer_route"] = check_http(out.via_lb.get(node.id))
            checks["balancer_member"] = check_balancer_member(node, out.manager)
    return checks


def worst(states) -> str:
    return max(states, key=lambda s: SEVERITY[s], default=S.OK)


def level_of(state: str) -> int:
    return {S.OK: 0, S.UNKNOWN: 1, S.WARN: 1, S.BAD: 2}[state]


NUMBER_FIELDS = ("level", "up", "ssh_ms", "http_ms", "balancer_ms", "db_ms", "load_x100", "mem_pct", "disk_pct",
                 "wflow_free_mb")


def by_node(results) -> dict:
    grouped: dict = {}
    for (nid, key), result in results.items():
        grouped.setdefault(nid, {})[key] = result
    return grouped


def numbers(job: ClusterJob, out: Outcome, results) -> dict[int, dict]:
    """Per node, the HealthNumbers columns of this cycle."""
    grouped = by_node(results)
    lb_node = job.lb["node_id"] if job.lb else None
    db_node = job.db["node_id"] if job.db else None
    rows = {}
    for node in job.nodes:
        g = out.gathered.get(node.id) or Gathered()
        mine = grouped.get(node.id, {})
        serving = [k for k in ("http", "balancer", "database") if k in mine]
        via = out.via_lb.get(node.id) if node.is_app else out.lb_probe if node.id == lb_node else None
        rows[node.id] = {
            "level": level_of(worst(r.state for r in mine.values())),
            "up": g.ok and all(mine[k].state == S.OK for k in serving),
            "ssh_ms": g.ssh_ms,
            "http_ms": _probe_ms(out.http.get(node.id)),
            "balancer_ms": _probe_ms(via),
            "db_ms": _probe_ms(out.db_probe if node.id == db_node else None),
            "load_x100": _to_int(g.facts.get("load1"), 100),
            "mem_pct": _to_int(g.facts.get("mem_pct")),
            "disk_pct": _to_int(g.facts.get("disk_pct")),
            "wflow_free_mb": _mb(g.facts.get("wflow_free_kb")),
        }
    return rows


def _probe_ms(p: Probe | None) -> int | None:
    return p.ms if p is not None and p.ok else None


def _mb(kb) -> int | None:
    value = _to_int(kb)
    return None if value is None else value // 1024


# ---- run the probes concurrently ----------------------------------------------------------------------------


def _guard(fn, *args):
    """A job that raised unexpectedly gives an 'internal' result instead of losing the whole cycle."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - one broken node must not stop the cycle
        log.exception("health job %s failed", getattr(fn, "__name__", fn))
        if fn is gather:
            return Gathered(error=f"internal error: {exc}", kind="internal")
        return Probe(False, detail=f"internal error: {exc}")


def probe_all(job: ClusterJob) -> Outcome:
    out = Outcome()
    cluster_level: dict = {}
    futures = []
    lb_node = job.lb["node_id"] if job.lb else None
    db_node = job.db["node_id"] if job.db else None
    threads = max(1, min(setting("HEALTH_CHECK_THREADS"), 3 * len(job.nodes) + 2))
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="health") as pool:
        def submit(store, key, fn, *args):
            futures.append((store, key, pool.submit(_guard, fn, *args)))

        for node in job.nodes:
            script = gather_script(node, job.wflow_home, node.id == db_node, node.id == lb_node)
            submit(out.gathered, node.id, gather, node.target, script, node.catalina_base)
            if node.is_app:
                submit(out.http, node.id, probe_joget, node.address, node.http_port, job.context_path)
                if job.lb and node.jvm_route:
                    cookie = {"Cookie": f"{job.lb['sticky_cookie']}=jcc-health.{node.jvm_route}"}
                    submit(out.via_lb, node.id, probe_joget, job.lb["address"], job.lb["port"], job.context_path,
                           cookie)
        if job.lb:
            submit(cluster_level, "lb", probe_joget, job.lb["address"], job.lb["port"], job.context_path)
        if job.db:
            d = job.db
            submit(cluster_level, "db", mysql_ping, d["host"], d["port"], d["user"], d["password"], d["name"])
        for store, key, future in futures:
            store[key] = future.result()
    out.lb_probe, out.db_probe = cluster_level.get("lb"), cluster_level.get("db")
    if job.lb:
        # After the probes: Apache marks a member Err only when a request to it failed.
        out.manager = _guard(fetch_balancer_manager, job.lb)
        if isinstance(out.manager, Probe):
            out.manager = Manager(error=out.manager.detail)
    return out


# ---- record a cycle -----------------------------------------------------------------------------------------


@transaction.atomic
def record(job: ClusterJob, now: datetime, results, rows: dict[int, dict]) -> list[HealthEvent]:
    """Samples and latest numbers of every node; states and events only where something changed."""
    # A node removed while the cycle ran: drop what was measured on it rather than fail the whole cycle.
    alive = set(Node.objects.filter(cluster_id=job.id).values_list("pk", flat=True))
    rows = {nid: r for nid, r in rows.items() if nid in alive}
    results = {k: r for k, r in results.items() if k[0] is None or k[0] in alive}
    HealthSample.objects.bulk_create([HealthSample(node_id=nid, time=now, **r) for nid, r in rows.items()])
    grouped = by_node(results)
    details = {nid: {k: [r.state, r.detail] for k, r in grouped.get(nid, {}).items()} for nid in rows}
    NodeHealth.objects.bulk_create(
        [NodeHealth(node_id=nid, checked_at=now, details=details[nid], **r) for nid, r in rows.items()],
        update_conflicts=True, unique_fields=["node"], update_fields=["checked_at", "details", *NUMBER_FIELDS],
    )
    return _record_states(job, now, results)


def _record_states(job: ClusterJob, now: datetime, results) -> list[HealthEvent]:
    current = {(s.node_id, s.key): s for s in CheckState.objects.filter(cluster_id=job.id)}
    changed, created, events = [], [], []
    for (nid, key), result in results.items():
        detail = result.detail[:500]
        old = current.pop((nid, key), None)
        if old is None:
            created.append(CheckState(cluster_id=job.id, node_id=nid, key=key, state=result.state, since=now,
                                      detail=detail))
            if result.state != S.OK:  # a first look that finds trouble is news; a first "ok" is not
                events.append(HealthEvent(cluster_id=job.id, node_id=nid, key=key, time=now, old_state="",
                                          new_state=result.state, detail=detail))
        elif old.state != result.state:
            events.append(HealthEvent(cluster_id=job.id, node_id=nid, key=key, time=now, old_state=old.state,
                                      new_state=result.state, detail=detail))
            old.state, old.since, old.detail = result.state, now, detail
            changed.append(old)
    CheckState.objects.bulk_create(created)
    CheckState.objects.bulk_update(changed, ["state", "since", "detail"], batch_size=200)
    if current:  # checks that no longer apply (a role or a layer was removed)
        CheckState.objects.filter(pk__in=[s.pk for s in current.values()]).delete()
    return HealthEvent.objects.bulk_create(events)


# ---- notify -------------------------------------------------------------------------------------------------


def worth_notifying(event: HealthEvent) -> bool:
    """Unknown follows from another failure that has its own event; unknown -> ok is its recovery's echo."""
    if event.new_state == S.UNKNOWN:
        return False
    return not (event.old_state == S.UNKNOWN and event.new_state == S.OK)


def event_line(event: HealthEvent, names: dict) -> str:
    where = names.get(event.node_id, "cluster")
    old = event.old_state or "new"
    return f"{where} {CHECKS.get(event.key, event.key)}: {old} -> {event.new_state}: {event.detail}"


def notify(cluster_name: str, events: list[HealthEvent], names: dict) -> None:
    events = [e for e in events if worth_notifying(e)]
    if not events:
        return
    _send_email(cluster_name, events, names)
    _post_webhook(cluster_name, events, names)


def _send_email(cluster_name: str, events, names) -> None:
    recipients = setting("HEALTH_ALERT_EMAIL")
    if not recipients:
        return
    bad = sum(1 for e in events if e.new_state == S.BAD)
    subject = f"[{cluster_name}] {len(events)} health change(s), {bad} failing: {event_line(events[0], names)}"
    body = "\n".join(f"{e.time:%Y-%m-%d %H:%M:%S %Z}  {event_line(e, names)}" for e in events)
    try:
        send_mail(subject[:200], body, None, list(recipients))
    except Exception:  # noqa: BLE001 - any mail failure (DNS, SMTP, auth) is logged, never raised
        log.exception("health e-mail to %s failed", ", ".join(recipients))


def webhook_payload(cluster_name: str, events, names) -> dict:
    return {
        "cluster": cluster_name,
        "events": [{"node": names.get(e.node_id), "check": e.key, "label": CHECKS.get(e.key, e.key),
                    "from": e.old_state or None, "to": e.new_state, "detail": e.detail, "time": e.time.isoformat()}
                   for e in events],
    }


def _post_webhook(cluster_name: str, events, names) -> None:
    url = setting("HEALTH_WEBHOOK_URL")
    if not url:
        return
    if not url.startswith(("http://", "https://")):
        log.warning("health webhook %r is not an http(s) URL: not sent", url)
        return
    data = json.dumps(webhook_payload(cluster_name, events, names)).encode()
    req = urllib.request.Request(url, data=data, method="POST",  # noqa: S310 - scheme checked above
                                 headers={"Content-Type": "application/json", "User-Agent": "joget-console"})
    try:
        with urllib.request.urlopen(req, timeout=setting("HEALTH_WEBHOOK_TIMEOUT")) as resp:  # noqa: S310
            resp.read(1024)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        log.warning("health webhook %s failed: %s", url, exc)


# ---- the cycle ----------------------------------------------------------------------------------------------


def claim(cluster_id: int, now: datetime) -> bool:
    """Take the cluster's lease; a cycle whose worker died frees it by expiry."""
    ttl = timedelta(seconds=max(60.0, 4 * setting("HEALTH_CHECK_INTERVAL")))
    HealthRun.objects.get_or_create(cluster_id=cluster_id)
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    return HealthRun.objects.filter(free, cluster_id=cluster_id).update(lease_until=now + ttl, started=now) == 1


@dataclass
class CycleReport:
    cluster: str
    nodes: int
    seconds: float
    events: list[HealthEvent]
    results: dict


def run_cycle(cluster_id: int) -> CycleReport | None:
    """One check cycle of one cluster; None when another cycle of it holds the lease."""
    now = timezone.now()
    if not Cluster.objects.filter(pk=cluster_id).exists():
        return None  # removed since the tick was queued
    if not claim(cluster_id, now):
        log.info("health cycle of cluster %s skipped: the previous one is still running", cluster_id)
        return None
    t0 = time.monotonic()
    error = ""
    try:
        cluster = Cluster.objects.get(pk=cluster_id)
        job = snapshot(cluster)
        out = probe_all(job)
        results = evaluate(job, out)
        events = record(job, now, results, numbers(job, out, results))
        notify(job.name, events, {n.id: n.name for n in job.nodes})
        return CycleReport(job.name, len(job.nodes), time.monotonic() - t0, events, results)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        HealthRun.objects.filter(cluster_id=cluster_id).update(
            lease_until=None, finished=timezone.now(), duration_ms=round((time.monotonic() - t0) * 1000),
            nodes=Node.objects.filter(cluster_id=cluster_id).count(), error=error)


def cluster_ids() -> list[int]:
    return list(Cluster.objects.filter(nodes__isnull=False).distinct().values_list("pk", flat=True))


# ---- retention ----------------------------------------------------------------------------------------------


def prune(now: datetime | None = None) -> int:
    """Drop samples and events older than HEALTH_RETENTION_DAYS, one node's range at a time (the primary
    key's index), so no statement scans or locks the whole table."""
    cutoff = (now or timezone.now()) - timedelta(days=setting("HEALTH_RETENTION_DAYS"))
    removed = 0
    for node_id in Node.objects.values_list("pk", flat=True):
        removed += HealthSample.objects.filter(node_id=node_id, time__lt=cutoff).delete()[0]
    for cid in Cluster.objects.values_list("pk", flat=True):
        HealthEvent.objects.filter(cluster_id=cid, time__lt=cutoff).delete()
    CatalinaTail.objects.filter(requested_at__lt=(now or timezone.now()) - timedelta(days=1)).delete()
    return removed


# ---- catalina.out on demand ---------------------------------------------------------------------------------


def catalina_out_path(node: Node) -> str:
    return f"{node.effective_catalina_base}/logs/catalina.out"


def fetch_catalina_tail(tail_id: int) -> None:
    tail = CatalinaTail.objects.select_related("node__credential", "node__cluster__credential").get(pk=tail_id)
    path = catalina_out_path(tail.node)
    q = ssh.quote
    command = ssh.as_dir_owner(path.rsplit("/", 1)[0], (
        f"test -f {q(path)} || {{ echo 'no such file: '{q(path)} >&2; exit 3; }}; "
        f"tail -n {int(tail.lines)} -- {q(path)} | tail -c {CATALINA_TAIL_MAX_BYTES}"))
    text, error = "", ""
    try:
        with ssh.open_connection(tail.node, connect_timeout=setting("HEALTH_SSH_TIMEOUT")) as conn:
            result = conn.run(command, timeout=setting("HEALTH_COMMAND_TIMEOUT") * 3)
        text = result.stdout
        if not result.ok:
            error = result.stderr.strip()[-500:] or f"exit code {result.exit_code}"
    except ssh.SSHError as exc:
        error = str(exc)
    # Viewers read the tail: the cluster's secrets (a JDBC URL with its password, a license) are masked before
    # it is stored, as in deployment logs.
    mask = _masker(tail.node.cluster)
    CatalinaTail.objects.filter(pk=tail_id).update(text=mask(text), error=mask(error), path=path,
                                                   finished_at=timezone.now())


def _masker(cluster: Cluster):
    return masker(cluster_secrets(cluster))
