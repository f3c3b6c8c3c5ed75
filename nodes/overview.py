"""The cluster overview page: each layer and node coloured by what the health checks last stored, and the
current or last deployment. Reads stored rows only (no SSH): the check cycle (nodes/health/) writes them."""

from __future__ import annotations

from . import health
from .models import CheckState, Cluster
from .status_views import node_rows

S = health.S
# Unknown counts as amber, as on the status page: something could not be checked.
CSS = {S.OK: "ok", S.WARN: "warn", S.UNKNOWN: "warn", S.BAD: "bad"}

# Which stored checks speak for which layer of the guide.
LAYER_CHECKS = {
    "shared_directory": ("wflow",),
    "shared_database": ("database",),
    "app_servers": ("tomcat", "http", "replication", "servers_json"),
    "load_balancer": ("balancer", "balancer_route", "balancer_member"),
}


def layer_health(cluster: Cluster) -> dict[str, dict]:
    """Per layer: the worst stored state of its checks, as a CSS colour, a short label and the detail."""
    keys = [k for ks in LAYER_CHECKS.values() for k in ks]
    states = list(CheckState.objects.filter(cluster=cluster, key__in=keys).select_related("node"))
    out = {}
    for layer, layer_keys in LAYER_CHECKS.items():
        mine = [s for s in states if s.key in layer_keys]
        if not mine:
            out[layer] = {"css": "neutral", "label": "not checked yet", "detail": ""}
            continue
        worst = max(mine, key=lambda s: health.SEVERITY[s.state])
        if worst.state == S.OK:
            out[layer] = {"css": "ok", "label": "healthy", "detail": f"{len(mine)} checks ok"}
        else:
            where = f" on {worst.node.name}" if worst.node_id else ""
            label = f"{health.CHECKS.get(worst.key, worst.key)}: {worst.get_state_display().lower()}{where}"
            out[layer] = {"css": CSS[worst.state], "label": label, "detail": worst.detail}
    return out


STATE_LABEL = {S.OK: "healthy", S.WARN: "warning", S.BAD: "failing", S.UNKNOWN: "unknown", "none": "not checked"}


def nodes_at_a_glance(cluster: Cluster) -> list:
    """The nodes by name, each with `glance` (the status page's row: colour, state, since, problems) and
    `glance_label` (its state in words)."""
    rows = {row.id: row for row in node_rows(cluster)}
    nodes = list(cluster.nodes.order_by("name"))
    for node in nodes:
        node.glance = rows.get(node.id)
        node.glance_label = STATE_LABEL.get(node.glance.state if node.glance else "none", "not checked")
    return nodes


def deployment_summary(cluster: Cluster) -> dict | None:
    """The running deployment, or else the latest one: status, who, when, progress."""
    from deployments.models import Deployment, StepRun

    deployments = cluster.deployments.select_related("started_by")
    dep = deployments.filter(status=Deployment.Status.RUNNING).first() or deployments.first()
    if dep is None:
        return None
    statuses = list(dep.runs.values_list("status", flat=True))
    done = sum(1 for s in statuses if s in StepRun.FINISHED)
    total = len(statuses)
    return {
        "deployment": dep,
        "current": dep.is_active,
        "total": total,
        "done": done,
        "percent": int(100 * done / total) if total else 0,
        "failed": sum(1 for s in statuses if s in (StepRun.Status.FAILED, StepRun.Status.CANCELLED)),
        "recap": dep.recap(),
    }


def context(cluster: Cluster) -> dict:
    from deployments import checklist
    from deployments.models import CheckRun

    check_run = CheckRun.objects.filter(cluster=cluster).select_related("started_by").first()
    return {
        "layer_health": layer_health(cluster),
        "nodes": nodes_at_a_glance(cluster),
        "latest": deployment_summary(cluster),
        "check_run": check_run,
        "checklist": checklist.summary(check_run),
    }
