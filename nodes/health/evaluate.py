"""A cycle's observations turned into results per check and numbers per node."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..models import HealthState
from .balancer_manager import Manager
from .base import Verdict, to_int, worst
from .checks import (
    judge_balancer,
    judge_balancer_member,
    judge_database,
    judge_disk,
    judge_host_key,
    judge_http,
    judge_load,
    judge_memory,
    judge_replication,
    judge_servers_json,
    judge_ssh,
    judge_tomcat,
    judge_wflow,
)
from .gather import Gathered, parse_servers_json
from .jobs import ClusterJob, NodeJob
from .probes import Probe


@dataclass
class Observed:
    """What one cycle met, per node id (None: the cluster)."""

    gathered: dict = field(default_factory=dict)
    http: dict = field(default_factory=dict)
    via_lb: dict = field(default_factory=dict)
    lb_probe: Probe | None = None
    db_probe: Probe | None = None
    manager: Manager | None = None


def cluster_servers(job: ClusterJob, out: Observed) -> tuple[list[str] | None, bool]:
    """(servers.json names, whether the file was seen) from the first app server that could read it."""
    for node in job.nodes:
        facts = out.gathered.get(node.id, Gathered()).facts
        if "servers_json" in facts:
            return parse_servers_json(facts["servers_json"]), True
    return None, False


def evaluate(job: ClusterJob, out: Observed) -> dict[tuple[int | None, str], Verdict]:
    results: dict[tuple[int | None, str], Verdict] = {}
    servers, seen = cluster_servers(job, out)
    for node in job.nodes:
        g = out.gathered.get(node.id) or Gathered(error="not checked", kind="internal")
        for key, result in node_checks(job, node, g, out, servers, seen).items():
            results[(node.id, key)] = result
    lb_node = job.lb["node_id"] if job.lb else None
    if job.lb:
        results[(lb_node, "balancer")] = judge_balancer(out.lb_probe, out.manager, out.gathered.get(lb_node))
    if job.db:
        db_node = job.db["node_id"]
        results[(db_node, "database")] = judge_database(out.db_probe, out.gathered.get(db_node))
    return results


def node_checks(job: ClusterJob, node: NodeJob, g: Gathered, out: Observed, servers, seen) -> dict[str, Verdict]:
    checks = {"ssh": judge_ssh(g), "host_key": judge_host_key(g, node), "load": judge_load(g),
              "memory": judge_memory(g), "disk": judge_disk(g)}
    if node.is_app:
        checks.update(
            wflow=judge_wflow(g, job.wflow_home),
            tomcat=judge_tomcat(g, node),
            http=judge_http(out.http.get(node.id)),
            replication=judge_replication(g, job.app_count - 1),
            servers_json=judge_servers_json(g, node, servers, seen),
        )
        if job.lb and node.jvm_route:
            checks["balancer_route"] = judge_http(out.via_lb.get(node.id))
            checks["balancer_member"] = judge_balancer_member(node, out.manager)
    return checks



def level_of(state: str) -> int:
    return {HealthState.OK: 0, HealthState.UNKNOWN: 1, HealthState.WARN: 1, HealthState.BAD: 2}[state]


NUMBER_FIELDS = ("level", "up", "ssh_ms", "http_ms", "balancer_ms", "db_ms", "load_x100", "mem_pct", "disk_pct",
                 "wflow_free_mb")


def by_node(results) -> dict:
    grouped: dict = {}
    for (nid, key), result in results.items():
        grouped.setdefault(nid, {})[key] = result
    return grouped


def numbers(job: ClusterJob, out: Observed, results) -> dict[int, dict]:
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
            "up": g.ok and all(mine[k].state == HealthState.OK for k in serving),
            "ssh_ms": g.ssh_ms,
            "http_ms": _probe_ms(out.http.get(node.id)),
            "balancer_ms": _probe_ms(via),
            "db_ms": _probe_ms(out.db_probe if node.id == db_node else None),
            "load_x100": to_int(g.facts.get("load1"), 100),
            "mem_pct": to_int(g.facts.get("mem_pct")),
            "disk_pct": to_int(g.facts.get("disk_pct")),
            "wflow_free_mb": _mb(g.facts.get("wflow_free_kb")),
        }
    return rows


def _probe_ms(p: Probe | None) -> int | None:
    return p.ms if p is not None and p.ok else None


def _mb(kb) -> int | None:
    value = to_int(kb)
    return None if value is None else value // 1024
