"""One pure function per check key (CHECKS): gathered facts and probes in, a Verdict out. No I/O, no ORM.

They judge what the cycle already met; nothing here probes (unlike the pre-deployment checklist).
"""

from __future__ import annotations

from .. import ssh
from ..models import HealthState
from .balancer_manager import Manager, member_state
from .base import Verdict, to_int
from .gather import Gathered, replication_members
from .jobs import NodeJob
from .probes import Probe

# Thresholds: (warn, bad).
LOAD_PER_CPU = (1.5, 3.0)
MEM_PCT = (90, 97)
DISK_PCT = (85, 95)
WFLOW_FREE_MB = (1024, 100)  # below these
SLOW_MS = 2000



def _level(value: float, warn: float, bad: float) -> str:
    """OK below `warn`, WARN from it, BAD from `bad` on."""
    return HealthState.BAD if value >= bad else HealthState.WARN if value >= warn else HealthState.OK

def _duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def _no_ssh(g: Gathered) -> Verdict:
    return Verdict(HealthState.UNKNOWN, "not checked: no SSH session")


def judge_ssh(g: Gathered) -> Verdict:
    if g.ok:
        slow = g.ssh_ms is not None and g.ssh_ms > SLOW_MS
        return Verdict(HealthState.WARN if slow else HealthState.OK, f"logged in{' slowly' if slow else ''}")
    if g.kind == "timeout":
        return Verdict(HealthState.BAD, f"logged in, but {g.error}")
    if g.kind == "mismatch":
        return Verdict(HealthState.OK, "reachable; not logged in: the host key changed")
    if g.kind in ("unpinned", "config"):
        return Verdict(HealthState.UNKNOWN, g.error)
    return Verdict(HealthState.BAD, g.error)


def judge_host_key(g: Gathered, node: NodeJob) -> Verdict:
    if g.kind == "mismatch":
        return Verdict(HealthState.BAD, g.error)
    if not node.host_key:
        return Verdict(HealthState.WARN, "no host key pinned: confirm it on the node page")
    if g.ok or g.kind == "timeout":
        return Verdict(HealthState.OK, f"matches the pinned key {ssh.fingerprint(node.host_key)}")
    return _no_ssh(g)


def judge_load(g: Gathered) -> Verdict:
    if not g.ok:
        return _no_ssh(g)
    try:
        load, cpus = float(g.facts["load1"]), max(1, int(g.facts.get("cpus") or 1))
    except (KeyError, ValueError):
        return Verdict(HealthState.UNKNOWN, "no load average in the output")
    per_cpu = load / cpus
    state = _level(per_cpu, *LOAD_PER_CPU)
    return Verdict(state, f"load {load:.2f} on {cpus} CPU(s)")


def _judge_pct(g: Gathered, key: str, what: str, limits: tuple[int, int]) -> Verdict:
    if not g.ok:
        return _no_ssh(g)
    pct = to_int(g.facts.get(key))
    if pct is None:
        return Verdict(HealthState.UNKNOWN, f"no {what} figure in the output")
    state = _level(pct, *limits)
    return Verdict(state, f"{what} {pct}% used")


def judge_memory(g: Gathered) -> Verdict:
    return _judge_pct(g, "mem_pct", "memory", MEM_PCT)


def judge_disk(g: Gathered) -> Verdict:
    return _judge_pct(g, "disk_pct", "disk /", DISK_PCT)


def judge_wflow(g: Gathered, wflow_home: str) -> Verdict:
    if not g.ok:
        return _no_ssh(g)
    if g.facts.get("wflow_missing"):
        return Verdict(HealthState.BAD, f"{wflow_home} does not exist (shared directory not mounted?)")
    free_kb = to_int(g.facts.get("wflow_free_kb"))
    if free_kb is None:
        return Verdict(HealthState.UNKNOWN, f"no free-space figure for {wflow_home}")
    free_mb = free_kb // 1024
    warn, bad = WFLOW_FREE_MB
    state = HealthState.BAD if free_mb < bad else HealthState.WARN if free_mb < warn else HealthState.OK
    return Verdict(state, f"{free_mb:,} MB free in {wflow_home}")


def judge_tomcat(g: Gathered, node: NodeJob) -> Verdict:
    if not g.ok:
        return _no_ssh(g)
    if not g.facts.get("tomcat_pid"):
        return Verdict(HealthState.BAD, f"no Tomcat process with -Dcatalina.base={node.catalina_base}")
    uptime = to_int(g.facts.get("tomcat_uptime"))
    up = f", up {_duration(uptime)}" if uptime is not None else ""
    return Verdict(HealthState.OK, f"pid {g.facts['tomcat_pid']}{up}")


def judge_http(p: Probe | None) -> Verdict:
    if p is None:
        return Verdict(HealthState.UNKNOWN, "not probed")
    if not p.ok:
        return Verdict(HealthState.BAD, p.detail)
    return Verdict(HealthState.WARN if p.ms and p.ms > SLOW_MS else HealthState.OK, p.detail)


def judge_replication(g: Gathered, peers: int) -> Verdict:
    if peers == 0:
        return Verdict(HealthState.OK, "single app server: nothing to replicate with")
    if not g.ok:
        return _no_ssh(g)
    if not g.facts.get("tomcat_pid"):
        return Verdict(HealthState.UNKNOWN, "Tomcat is not running")
    if g.facts.get("catalina_out_missing"):
        return Verdict(HealthState.UNKNOWN, "no catalina.out")
    members = replication_members(g.facts.get("repl", []))
    if members is None:
        return Verdict(HealthState.UNKNOWN, "no Tomcat start found in the end of catalina.out")
    listed = ", ".join(sorted(members)) or "none"
    state = HealthState.OK if len(members) >= peers else HealthState.WARN
    return Verdict(state, f"{len(members)} of {peers} other member(s) in catalina.out: {listed}")


def judge_servers_json(g: Gathered, node: NodeJob, servers: list[str] | None, seen: bool) -> Verdict:
    if not g.ok:
        return _no_ssh(g)
    if g.facts.get("wflow_missing"):
        return Verdict(HealthState.UNKNOWN, "no wflow home")
    if not seen:
        return Verdict(HealthState.WARN, "no servers.json in wflow home (Joget writes it when it starts)")
    if servers is None:
        return Verdict(HealthState.UNKNOWN, "servers.json is in a format this console does not know")
    names = {node.name, node.jvm_route, g.facts.get("hostname", ""), g.facts.get("wflow_name", "")} - {""}
    listed = bool(names & set(servers))
    running = bool(g.facts.get("tomcat_pid"))
    if listed and running:
        return Verdict(HealthState.OK, f"listed ({', '.join(servers)})")
    if listed:
        return Verdict(HealthState.WARN, "listed, but Tomcat is not running: a stale entry")
    return Verdict(HealthState.WARN, f"not listed: Joget sees {', '.join(servers) or 'no node'}")


def judge_balancer_member(node: NodeJob, manager: Manager | None) -> Verdict:
    if manager is None or manager.members is None:
        return Verdict(HealthState.UNKNOWN, manager.error if manager else "balancer-manager not read")
    member = manager.members.get(node.jvm_route)
    if member is None:
        return Verdict(HealthState.WARN, f"no balancer member with route {node.jvm_route}")
    return Verdict(member_state(member["status"]), f"{member['status']} ({member['url']})")


def judge_balancer(p: Probe | None, manager: Manager | None, g: Gathered | None) -> Verdict:
    if p is None:
        return Verdict(HealthState.UNKNOWN, "not probed")
    if not p.ok:
        down = g is not None and g.ok and g.facts.get("lb_process") == "0"
        return Verdict(HealthState.BAD, p.detail + ("; Apache is not running" if down else ""))
    if manager is not None and manager.error:
        return Verdict(HealthState.WARN, f"{p.detail}; {manager.error}")
    return Verdict(HealthState.OK, f"{p.detail} through the balancer")


def judge_database(p: Probe | None, g: Gathered | None) -> Verdict:
    if p is None:
        return Verdict(HealthState.UNKNOWN, "not probed")
    if p.ok:
        return Verdict(HealthState.WARN if p.partial else HealthState.OK, p.detail)
    down = g is not None and g.ok and g.facts.get("db_process") == "0"
    return Verdict(HealthState.BAD, p.detail + ("; no mariadbd/mysqld process on the node" if down else ""))

