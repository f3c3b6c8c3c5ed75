"""Status pages: the cluster at a glance and one node's checks and history.

Nothing here opens SSH: the pages read what the check cycle stored (nodes/health/), and the
catalina.out tail is fetched by a Celery task that the page polls for. The cluster page reads the
small tables only (NodeHealth, CheckState, HealthEvent); samples are read for one node's 24 hours.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Case, IntegerField, Max, Min, Q, Value, When
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET, require_POST

from joget_cluster.access import operator_required, viewer_required
from joget_cluster.pages import page_or_partial

from . import health
from .models import (
    CatalinaTail,
    CheckState,
    Cluster,
    HealthEvent,
    HealthRun,
    HealthSample,
    HealthState,
    Node,
    NodeHealth,
    health_css,
)
from .shortcuts import get_cluster_or_404, get_node_or_404

EVENTS_SHOWN = 50
FIRST_LOOK = timedelta(hours=24)  # what a first visit lists as "changes"
CHART_HOURS = 24
CHART_BUCKETS = 144  # 10-minute columns
CHART_W, CHART_H, STRIP_H = 720, 110, 12
COLOR = {0: "ok", 1: "warn", 2: "bad"}
FILL = {"ok": "#1e8a4c", "warn": "#a86400", "bad": "#c0352b", "none": "#eef1f4"}




def poll_seconds() -> int:
    """Pages refresh about twice per check interval, not faster than every 5 s."""
    return max(5, min(30, round(health.setting("HEALTH_CHECK_INTERVAL") / 2)))


# ---- the cluster page ---------------------------------------------------------------------------------------


@dataclass
class NodeRow:
    id: int
    name: str
    address: str
    url: str
    state: str = "none"
    since: datetime | None = None
    problems: list = field(default_factory=list)
    numbers: dict = field(default_factory=dict)

    @property
    def color(self) -> str:
        return health_css(self.state, summary=True)


SEV_BY_STATE = Case(*(When(state=st, then=Value(sev)) for st, sev in health.SEVERITY.items() if sev),
                    default=Value(0), output_field=IntegerField())
STATE_BY_SEV = {sev: st for st, sev in health.SEVERITY.items()}


def node_rows(cluster: Cluster) -> list[NodeRow]:
    """Each node's worst state and since when, aggregated by the database (500 rows, not 6,000), and the
    checks that are not ok (few) with their details."""
    # reverse() once, not once per node: the URL differs only in the node's name.
    head, _, tail = reverse("nodes:node_status", args=[cluster.name, "x"]).rpartition("/x/")
    rows = {nid: NodeRow(nid, name, address, f"{head}/{name}/{tail}")
            for nid, name, address in Node.objects.filter(cluster=cluster).order_by("name")
            .values_list("id", "name", "address")}
    in_cluster = CheckState.objects.filter(cluster=cluster, node__isnull=False).order_by()
    worst = in_cluster.values("node_id").annotate(
        sev=Max(SEV_BY_STATE), last_change=Max("since"),
        **{f"since_{st}": Min("since", filter=Q(state=st))
           for st in (HealthState.BAD, HealthState.WARN, HealthState.UNKNOWN)})
    for w in worst:
        row = rows.get(w["node_id"])
        if row:
            row.state = STATE_BY_SEV[w["sev"]]
            # Not ok: since the oldest ongoing problem of the worst kind began. All ok: since the last recovery.
            row.since = w["last_change"] if row.state == HealthState.OK else w[f"since_{row.state}"]
    problems = in_cluster.exclude(state=HealthState.OK).values_list("node_id", "key", "state", "detail")
    for nid, key, state, detail in sorted(problems, key=lambda p: -health.SEVERITY[p[2]]):
        if nid in rows:
            rows[nid].problems.append((health.CHECKS.get(key, key), state, detail, health_css(state)))
    for row in rows.values():
        _one_cause(row)
    numbers = NodeHealth.objects.filter(node__cluster=cluster).values(
        "node_id", "ssh_ms", "http_ms", "balancer_ms", "load_x100", "mem_pct", "disk_pct")
    for n in numbers:
        if n["node_id"] in rows:
            rows[n["node_id"]].numbers = n
    return list(rows.values())


def _one_cause(row: NodeRow) -> None:
    """A node SSH cannot reach fails every check that needs a session (and its HTTP, if it is down): one cause,
    one chip, naming the checks it took with it in its title."""
    label = health.CHECKS["ssh"]
    cause = next((p for p in row.problems if p[0] == label and p[1] == HealthState.BAD), None)
    if cause and len(row.problems) > 1:
        others = [p[0] for p in row.problems if p is not cause]
        row.problems = [(f"{label} unreachable, {len(others)} check{'s' if len(others) != 1 else ''} with it",
                         HealthState.BAD, f"{cause[2]} Also failing or not checked because of it: {', '.join(others)}.",
                         cause[3])]


# The node table and the tiles are built here rather than in the template: 500 rows of ten cells through
# the template engine cost ~300 ms (a filter and an escape per value); this costs a few milliseconds.
# Every value goes through html.escape.


def _ms(value) -> str:
    return "—" if value is None else f"{value} ms"


def _pct(value) -> str:
    return "—" if value is None else f"{value}%"


def _when(value: datetime | None) -> str:
    return timezone.localtime(value).strftime("%m-%d %H:%M:%S") if value else "—"


def row_html(r: NodeRow) -> str:
    e = html.escape
    n = r.numbers
    problems = " ".join(f'<span class="status {css}" title="{e(d)}">{e(label)}</span>'
                        for label, _, d, css in r.problems)
    load = "—" if n.get("load_x100") is None else f"{n['load_x100'] / 100:.2f}"
    return (f'<tr data-node="{e(r.name)}" data-state="{r.state}"><td><a href="{e(r.url)}"><strong>{e(r.name)}'
            f'</strong></a> <span class="muted small">{e(r.address)}</span></td>'
            f'<td><span class="status {r.color}">{"not checked" if r.state == "none" else r.state}</span></td>'
            f'<td class="muted small">{_when(r.since)}</td><td>{problems}</td>'
            f'<td>{_ms(n.get("ssh_ms"))}</td><td>{_ms(n.get("http_ms"))}</td><td>{_ms(n.get("balancer_ms"))}</td>'
            f'<td>{load}</td><td>{_pct(n.get("mem_pct"))}</td><td>{_pct(n.get("disk_pct"))}</td></tr>')


def tile_html(r: NodeRow) -> str:
    e = html.escape
    title = ", ".join(f"{label} {st}" for label, st, _, _ in r.problems) or r.state
    return f'<a class="status {r.color}" href="{e(r.url)}" title="{e(r.name)}: {e(title)}">{e(r.name)}</a>'


def rows_html(rows: list[NodeRow], render) -> SafeString:
    return mark_safe("".join(render(r) for r in rows))  # noqa: S308 - built from html.escape()d values


def summary(rows: list[NodeRow], cluster_states) -> dict:
    """Red/amber/green: counts of nodes by color, and the overall color (cluster-wide checks included)."""
    counts = {"bad": 0, "warn": 0, "ok": 0, "neutral": 0}
    for r in rows:
        counts[r.color] += 1
    cluster_worst = health.worst(s.state for s in cluster_states) if cluster_states else None
    if counts["bad"] or cluster_worst == HealthState.BAD:
        overall = "bad"
    elif counts["warn"] or cluster_worst in (HealthState.WARN, HealthState.UNKNOWN):
        overall = "warn"
    else:
        overall = "ok" if counts["ok"] else "neutral"
    return {**counts, "overall": overall, "total": len(rows)}


def events_since(cluster: Cluster, since: datetime) -> tuple[list, int]:
    qs = HealthEvent.objects.filter(cluster=cluster, time__gt=since)
    events = list(qs.select_related("node").order_by("-time", "-id")[:EVENTS_SHOWN])
    count = len(events) if len(events) < EVENTS_SHOWN else qs.count()
    for e in events:
        e.label = health.CHECKS.get(e.key, e.key)
    return events, count


def cluster_context(cluster: Cluster, since: datetime, first_look: bool) -> dict:
    rows = node_rows(cluster)
    cluster_states = list(CheckState.objects.filter(cluster=cluster, node__isnull=True))
    for s in cluster_states:
        s.label = health.CHECKS.get(s.key, s.key)
    events, event_count = events_since(cluster, since)
    order = {"bad": 0, "warn": 1, "neutral": 2, "ok": 3}
    return {
        "cluster": cluster,
        "tiles_html": rows_html(rows, tile_html),
        "rows_html": rows_html(sorted(rows, key=lambda r: (order[r.color], r.name)), row_html),
        "cluster_states": cluster_states,
        "summary": summary(rows, cluster_states),
        "events": events,
        "event_count": event_count,
        "since": since,
        "first_look": first_look,
        "run": HealthRun.objects.filter(cluster=cluster).first(),
        "interval": health.setting("HEALTH_CHECK_INTERVAL"),
        "poll": poll_seconds(),
        "now": timezone.now(),
    }


def _seen_key(cluster: Cluster) -> str:
    return f"health_seen_{cluster.pk}"


def last_look(request, cluster: Cluster) -> tuple[datetime, bool]:
    """When this user last opened this cluster's status page (kept in the session); now becomes the last look."""
    now = timezone.now()
    previous = parse_datetime(request.session.get(_seen_key(cluster), "") or "")
    request.session[_seen_key(cluster)] = now.isoformat()
    if previous is None:
        return now - FIRST_LOOK, True
    return previous, False


@require_GET
@viewer_required
def cluster_status(request, name):
    cluster = get_cluster_or_404(name)
    since, first = last_look(request, cluster)
    return render(request, "nodes/status_cluster.html", cluster_context(cluster, since, first))


@require_GET
@viewer_required
def cluster_status_body(request, name):
    """The polled part: the look the page was opened with stays the reference for "changed since"."""
    cluster = get_cluster_or_404(name)
    since = parse_datetime(request.GET.get("since", "")) or timezone.now() - FIRST_LOOK
    first = request.GET.get("first") == "1"
    return render(request, "nodes/_status_cluster_body.html", cluster_context(cluster, since, first))


@require_POST
@operator_required
def cluster_check_now(request, name):
    from .tasks import check_cluster

    cluster = get_cluster_or_404(name)
    transaction.on_commit(lambda: check_cluster.delay(cluster.pk))
    if request.htmx:
        return HttpResponse('<span class="muted small">Check queued: the page updates when it finishes.</span>')
    return redirect("nodes:cluster_status", cluster.name)


# ---- the node page ------------------------------------------------------------------------------------------


def node_checks(node: Node) -> list[CheckState]:
    order = list(health.CHECKS)
    states = sorted(CheckState.objects.filter(node=node), key=lambda s: order.index(s.key) if s.key in order else 99)
    current = getattr(NodeHealth.objects.filter(node=node).only("details").first(), "details", {}) or {}
    for s in states:
        s.label = health.CHECKS.get(s.key, s.key)
        now_state, now_detail = (current.get(s.key) or [s.state, s.detail])[:2]
        s.current_detail = now_detail if now_detail != s.detail else ""
    return states


def node_context(node: Node) -> dict:
    now = timezone.now()
    samples = HealthSample.objects.filter(node=node, time__gte=now - timedelta(hours=CHART_HOURS)).order_by("time")
    rows = samples.values_list("time", "level", "up", "ssh_ms", "http_ms")
    latest = NodeHealth.objects.filter(node=node).first()
    events = list(HealthEvent.objects.filter(node=node).order_by("-time", "-id")[:20])
    for e in events:
        e.label = health.CHECKS.get(e.key, e.key)
    return {
        "node": node,
        "cluster": node.cluster,
        "checks": node_checks(node),
        "latest": latest,
        "load": latest.load_x100 / 100 if latest and latest.load_x100 is not None else None,
        "chart": history_chart(list(rows), now),
        "events": events,
        "tail": CatalinaTail.objects.filter(node=node).first(),
        "poll": poll_seconds(),
    }


@require_GET
@viewer_required
def node_status(request, name, node):
    return render(request, "nodes/status_node.html", node_context(get_node_or_404(name, node)))


@require_GET
@viewer_required
def node_status_checks(request, name, node):
    obj = get_node_or_404(name, node)
    return render(request, "nodes/_status_checks.html", {"node": obj, "cluster": obj.cluster,
                                                          "checks": node_checks(obj), "poll": poll_seconds()})


@require_POST
@operator_required
def node_catalina_request(request, name, node):
    from .tasks import fetch_catalina_tail

    obj = get_node_or_404(name, node)
    raw = request.POST.get("lines", "")
    lines = min(2000, max(10, int(raw))) if raw.isdigit() else 200
    with transaction.atomic():
        tail = CatalinaTail.objects.create(node=obj, lines=lines)
        transaction.on_commit(lambda: fetch_catalina_tail.delay(tail.pk))
    return render(request, "nodes/_status_catalina.html", {"node": obj, "cluster": obj.cluster, "tail": tail})


@require_GET
@viewer_required
def node_catalina_tail(request, name, node, tail_id):
    obj = get_node_or_404(name, node)
    tail = get_object_or_404(CatalinaTail, pk=tail_id, node=obj)
    ctx = {"node": obj, "cluster": obj.cluster, "tail": tail}
    return page_or_partial(request, "nodes/_status_catalina.html", "nodes/_status_catalina.html", ctx,
                           stop_polling=bool(tail.finished_at))


# ---- the 24-hour chart (inline SVG, drawn by the template from these numbers) -------------------------------


def _nice_ceiling(value: float) -> int:
    for step in (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000):
        if value <= step:
            return step
    return int(value) + 1


def _buckets(samples, start: datetime, width: timedelta) -> list[dict]:
    buckets = [{"n": 0, "level": 0, "down": False, "ssh": [], "http": []} for _ in range(CHART_BUCKETS)]
    for t, level, up, ssh_ms, http_ms in samples:
        i = int((t - start) / width)
        if not 0 <= i < CHART_BUCKETS:
            continue
        b = buckets[i]
        b["n"] += 1
        b["level"] = max(b["level"], level)
        b["down"] = b["down"] or not up
        if ssh_ms is not None:
            b["ssh"].append(ssh_ms)
        if http_ms is not None:
            b["http"].append(http_ms)
    return buckets


def _lines(buckets, key: str, ymax: int) -> list[str]:
    """Polyline point lists; a bucket without a value breaks the line (a gap, not a slope)."""
    step = CHART_W / CHART_BUCKETS
    lines, current = [], []
    for i, b in enumerate(buckets + [{key: []}]):  # the sentinel flushes the last run
        if b[key]:
            avg = sum(b[key]) / len(b[key])
            current.append(((i + 0.5) * step, CHART_H - min(avg, ymax) / ymax * CHART_H))
            continue
        if len(current) == 1:  # a lone point: a short tick, so that it stays visible
            x, y = current[0]
            current = [(x - 1.5, y), (x + 1.5, y)]
        if current:
            lines.append(" ".join(f"{x:.1f},{y:.1f}" for x, y in current))
        current = []
    return lines


def _strip(buckets) -> list[dict]:
    """Runs of equal status along the time axis: few rectangles instead of one per bucket."""
    step = CHART_W / CHART_BUCKETS
    runs = []
    for i, b in enumerate(buckets):
        kind = "none" if not b["n"] else "bad" if b["down"] or b["level"] == 2 else COLOR[b["level"]]
        if runs and runs[-1]["kind"] == kind:
            runs[-1]["w"] += step
        else:
            runs.append({"kind": kind, "x": i * step, "w": step})
    for r in runs:
        r["x"], r["w"], r["fill"] = f"{r['x']:.1f}", f"{r['w']:.1f}", FILL[r["kind"]]
    return runs


def history_chart(samples, now: datetime) -> dict:
    """The last 24 hours of one node: SSH and HTTP latency (averaged per 10 minutes) and up/down."""
    start = now - timedelta(hours=CHART_HOURS)
    buckets = _buckets(samples, start, timedelta(hours=CHART_HOURS) / CHART_BUCKETS)
    peak = max((max(b[k]) for b in buckets for k in ("ssh", "http") if b[k]), default=0)
    ymax = _nice_ceiling(max(peak, 1))
    down = sum(1 for _, _, up, _, _ in samples if not up)
    return {
        "w": CHART_W, "mid_x": CHART_W // 2, "h": CHART_H, "strip_y": CHART_H + 6, "strip_h": STRIP_H,
        "total_h": CHART_H + STRIP_H + 22, "label_y": CHART_H + STRIP_H + 20,
        "ymax": ymax, "ssh": _lines(buckets, "ssh", ymax), "http": _lines(buckets, "http", ymax),
        "strip": _strip(buckets), "samples": len(samples), "down": down,
        "up_pct": round(100 * (len(samples) - down) / len(samples), 1) if samples else None,
    }
