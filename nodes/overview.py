"""The inventory's part of the cluster overview: each layer and node coloured by what the health checks last
stored. Reads stored rows only (no SSH): the check cycle (nodes/health/) writes them. The page itself is
composed on the top floor (deployments/overview.py), beside the deployment and licensing parts."""

from __future__ import annotations

from . import health
from .models import CheckState, Cluster, HealthState, health_css
from .status_views import node_rows

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
        if worst.state == HealthState.OK:
            out[layer] = {"css": "ok", "label": "healthy", "detail": f"{len(mine)} checks ok"}
        else:
            where = f" on {worst.node.name}" if worst.node_id else ""
            label = f"{health.CHECKS.get(worst.key, worst.key)}: {worst.get_state_display().lower()}{where}"
            out[layer] = {"css": health_css(worst.state, summary=True), "label": label, "detail": worst.detail}
    return out


STATE_LABEL = {HealthState.OK: "healthy", HealthState.WARN: "warning", HealthState.BAD: "failing",
               HealthState.UNKNOWN: "unknown", "none": "not checked"}


def nodes_at_a_glance(cluster: Cluster) -> list:
    """The nodes by name, each with `glance` (the status page's row: colour, state, since, problems) and
    `glance_label` (its state in words)."""
    rows = {row.id: row for row in node_rows(cluster)}
    nodes = list(cluster.nodes.order_by("name"))
    for node in nodes:
        node.glance = rows.get(node.id)
        node.glance_label = STATE_LABEL.get(node.glance.state if node.glance else "none", "not checked")
    return nodes


def context(cluster: Cluster) -> dict:
    """What templates/nodes/_cluster_inventory.html shows: the layers (None while not set) with their health,
    and the nodes at a glance."""
    return {
        **{kind: cluster.layer(kind) for kind in Cluster.LAYERS},
        "layer_health": layer_health(cluster),
        "nodes": nodes_at_a_glance(cluster),
    }
