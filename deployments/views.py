from django.contrib import messages
from django.db.models import Count, Q
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling, trigger_client_event

from joget_cluster.access import operator_required, viewer_required
from nodes.models import Cluster

from . import engine, services
from .models import Deployment, LogLine, StepRun
from .steps import get_step

TAIL = 500  # lines shown when a log opens; older ones load on demand


def _deployment(pk: int) -> Deployment:
    return get_object_or_404(Deployment.objects.select_related("cluster", "started_by"), pk=pk)


def _run(dep_pk: int, run_pk: int) -> StepRun:
    return get_object_or_404(StepRun.objects.select_related("node", "deployment"), pk=run_pk, deployment_id=dep_pk)


def _progress(dep: Deployment) -> dict:
    counts = dep.runs.aggregate(
        total=Count("id"),
        done=Count("id", filter=Q(status__in=StepRun.FINISHED)),
        failed=Count("id", filter=Q(status__in=[StepRun.Status.FAILED, StepRun.Status.CANCELLED])),
    )
    counts["percent"] = int(100 * counts["done"] / counts["total"]) if counts["total"] else 0
    return counts


# How ssh.ConnectFailed begins or goes on: the node could not be reached, whatever the step was doing.
UNREACHABLE = ("Cannot reach ", "did not complete an SSH handshake", ": SSH failed: ", ": connection lost: ")


def _unreachable_hint(run: StepRun) -> str:
    """For a run that failed because SSH could not reach its node: the one hint that helps (the step's own
    hint is about the step's work, which never started)."""
    if run.status != StepRun.Status.FAILED or not run.node_id or not any(m in run.message for m in UNREACHABLE):
        return ""
    node = run.node
    return (f"{node.name} cannot be reached over SSH: check its address and port ({node.address}:{node.ssh_port}), "
            "that the server is up and sshd runs on it, and that no firewall drops the connection; then retry.")


def _root_failures(run: StepRun, by_step: dict[str, list[StepRun]], seen: set[int]) -> list[StepRun]:
    """The failed or cancelled runs that a skipped run waited for, through other skipped runs."""
    found = []
    for dependency in get_step(run.step).depends_on:
        for other in by_step.get(dependency, []):
            if other.status in (StepRun.Status.FAILED, StepRun.Status.CANCELLED):
                found.append(other)
            elif other.status == StepRun.Status.SKIPPED and other.pk not in seen:
                seen.add(other.pk)
                found += _root_failures(other, by_step, seen)
    return found


def _skipped_because(run: StepRun, by_step: dict[str, list[StepRun]]) -> str:
    """A skipped run's reason, naming the step and nodes that really failed (not a step skipped in turn)."""
    roots: dict[str, list[str]] = {}
    for r in _root_failures(run, by_step, set()):
        names = roots.setdefault(r.step, [])
        name = r.node.name if r.node_id else "the cluster"
        if name not in names:
            names.append(name)
    if not roots:
        return run.message
    return "Skipped: " + "; ".join(f"{step} failed on {', '.join(names)}" for step, names in roots.items()) + "."


def _groups(dep: Deployment) -> list[dict]:
    groups: dict[str, dict] = {}
    runs = list(dep.runs.select_related("node").order_by("position", "node__name"))
    by_step: dict[str, list[StepRun]] = {}
    for run in runs:
        by_step.setdefault(run.step, []).append(run)
        run.shown_hint = _unreachable_hint(run) or run.hint
    for run in runs:
        if run.status == StepRun.Status.SKIPPED:
            run.message = _skipped_because(run, by_step)
        if run.step not in groups:
            step = get_step(run.step)
            groups[run.step] = {"key": run.step, "title": step.title or run.step, "layer": step.layer, "runs": [],
                                "not_checked": dep.dry_run and step.checks_only}
        groups[run.step]["runs"].append(run)
    for g in groups.values():
        g["retryable"] = any(r.status in (StepRun.Status.FAILED, StepRun.Status.CANCELLED) for r in g["runs"])
    return list(groups.values())


@require_GET
@viewer_required
def deployment_list(request, name):
    cluster = get_object_or_404(Cluster, name=name)
    deployments = cluster.deployments.select_related("started_by")[:50]
    return render(request, "deployments/deployment_list.html", {"cluster": cluster, "deployments": deployments})


@require_POST
@operator_required
def deployment_start(request, name):
    cluster = get_object_or_404(Cluster, name=name)
    steps = [s for s in request.POST.get("steps", "").replace(" ", "").split(",") if s]
    next_url = _safe_next(request)
    try:
        dep = services.start_deployment(request, cluster, dry_run=bool(request.POST.get("dry_run")), steps=steps)
    except engine.DeploymentRefused as exc:
        messages.error(request, str(exc))
        return redirect(next_url or reverse("deployments:deployment_list", args=[name]))
    return redirect(next_url or reverse("deployments:deployment_detail", args=[dep.pk]))


def _safe_next(request) -> str | None:
    url = request.POST.get("next", "")
    if url and url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()}):
        return url
    return None


@require_GET
@viewer_required
def deployment_detail(request, pk):
    dep = _deployment(pk)
    ctx = {"deployment": dep, "cluster": dep.cluster, "groups": _groups(dep), "progress": _progress(dep),
           "recap": dep.recap()}
    if request.htmx:
        # Polled from another page (the wizard's Run step): its levers lead back there.
        ctx["back_url"] = request.htmx.current_url_abs_path or ""
        response = render(request, "deployments/_deployment_status.html", ctx)
        if not dep.is_active:
            response.status_code = HttpResponseStopPolling.status_code
            # The wizard's start button (disabled while this ran) listens for this and re-renders itself.
            trigger_client_event(response, "deployment-finished")
        return response
    return render(request, "deployments/deployment_detail.html", ctx)


@require_GET
@viewer_required
def run_log(request, pk, run_pk):
    """JSON lines for the log viewer: `after=N` (new lines, live), `before=N`
    (older lines, on demand), or neither (the tail)."""
    run = _run(pk, run_pk)
    qs = LogLine.objects.filter(run=run)
    if "after" in request.GET:
        after = int(request.GET["after"]) if request.GET["after"].isdigit() else 0
        lines = list(qs.filter(seq__gt=after).order_by("seq")[:5000].values_list("seq", "stream", "text"))
    elif "before" in request.GET:
        before = int(request.GET["before"]) if request.GET["before"].isdigit() else 0
        lines = list(qs.filter(seq__lt=before).order_by("-seq")[:TAIL].values_list("seq", "stream", "text"))[::-1]
    else:
        lines = list(qs.order_by("-seq")[:TAIL].values_list("seq", "stream", "text"))[::-1]
    return JsonResponse({
        "lines": lines,
        "status": run.status,
        "finished": run.is_finished and not ("after" in request.GET and len(lines) == 5000),
        "first_seq": lines[0][0] if lines else None,
        "message": run.message,
    })


@require_GET
@viewer_required
def run_log_download(request, pk, run_pk):
    run = _run(pk, run_pk)

    def rows():
        # Chunked by sequence number: constant memory at any log size.
        last = 0
        while True:
            chunk = list(LogLine.objects.filter(run=run, seq__gt=last).order_by("seq")[:5000]
                         .values_list("seq", "time", "stream", "text"))
            if not chunk:
                return
            for _seq, time, stream, text in chunk:
                yield f"{time:%H:%M:%S.%f}"[:-3] + f" {stream:6} {text}\n"
            last = chunk[-1][0]

    node = run.node.name if run.node_id else "cluster"
    response = StreamingHttpResponse(rows(), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="deployment-{pk}-{run.step}-{node}.log"'
    return response


@require_POST
@operator_required
def deployment_cancel(request, pk):
    return _lever(request, pk, services.cancel_deployment, "Cancel requested: running commands are interrupted.")


@require_POST
@operator_required
def deployment_resume(request, pk):
    return _lever(request, pk, services.resume_deployment, "Resumed: finished steps are re-probed first.")


@require_POST
@operator_required
def deployment_retry(request, pk):
    step = request.POST.get("step", "")
    return _lever(request, pk, lambda req, dep: services.retry_step(req, dep, step),
                  f"Retrying {step} where it failed.")


def _lever(request, pk, action, success: str) -> HttpResponse:
    dep = _deployment(pk)
    try:
        action(request, dep)
    except engine.DeploymentRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, success)
    return redirect(_safe_next(request) or reverse("deployments:deployment_detail", args=[pk]))


# -- prerequisite checklist ---------------------------------------------------------------------------

def _checklist_ctx(cluster, run):
    from .checklist import ITEMS, summary

    items = []
    if run:
        results = list(run.results.select_related("node"))
        for item in ITEMS:
            rows = [r for r in results if r.item == item.key]
            if rows:
                statuses = {r.status for r in rows}
                items.append({"key": item.key, "title": item.title, "results": rows,
                              "ok": statuses == {"pass"}, "failed": "fail" in statuses,
                              "planned": "planned" in statuses and statuses <= {"pass", "planned"}})
    return {"cluster": cluster, "check_run": run, "items": items, "summary": summary(run)}


@require_GET
@viewer_required
def checklist(request, name):
    cluster = get_object_or_404(Cluster, name=name)
    run = cluster.check_runs.first()
    ctx = _checklist_ctx(cluster, run)
    if request.htmx:
        response = render(request, "deployments/_checklist.html", ctx)
        if not run or run.finished:
            response.status_code = HttpResponseStopPolling.status_code
        return response
    return render(request, "deployments/checklist.html", ctx)


@require_POST
@operator_required
def checklist_run(request, name):
    cluster = get_object_or_404(Cluster, name=name)
    services.start_checklist(request, cluster)
    return redirect(_safe_next(request) or reverse("deployments:checklist", args=[name]))
