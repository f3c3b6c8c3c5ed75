from django.contrib import messages
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from joget_cluster.access import operator_required, viewer_required
from joget_cluster.pages import page_or_partial, safe_next
from nodes.shortcuts import get_cluster_or_404

from . import engine, services
from .models import Deployment, LogLine, StepRun
from .pages import checklist_context, run_groups

TAIL = 500  # lines shown when a log opens; older ones load on demand


def _deployment(pk: int) -> Deployment:
    return get_object_or_404(Deployment.objects.select_related("cluster", "started_by"), pk=pk)


def _run(dep_pk: int, run_pk: int) -> StepRun:
    return get_object_or_404(StepRun.objects.select_related("node", "deployment"), pk=run_pk, deployment_id=dep_pk)


@require_GET
@viewer_required
def deployment_list(request, name):
    cluster = get_cluster_or_404(name)
    deployments = cluster.deployments.select_related("started_by")[:50]
    return render(request, "deployments/deployment_list.html", {"cluster": cluster, "deployments": deployments})


@require_POST
@operator_required
def deployment_start(request, name):
    cluster = get_cluster_or_404(name)
    steps = [s for s in request.POST.get("steps", "").replace(" ", "").split(",") if s]
    next_url = safe_next(request)
    try:
        dep = services.start_deployment(request, cluster, dry_run=bool(request.POST.get("dry_run")), steps=steps)
    except engine.DeploymentRefused as exc:
        messages.error(request, str(exc))
        return redirect(next_url or reverse("deployments:deployment_list", args=[name]))
    return redirect(next_url or reverse("deployments:deployment_detail", args=[dep.pk]))


@require_GET
@viewer_required
def deployment_detail(request, pk):
    dep = _deployment(pk)
    # Polled from another page (the wizard's Run step), its levers lead back there; on its own page, nowhere else.
    ctx = {"deployment": dep, "cluster": dep.cluster, "groups": run_groups(dep), "progress": dep.progress(),
           "recap": dep.recap(), "back_url": request.htmx.current_url_abs_path or ""}
    response = page_or_partial(request, "deployments/deployment_detail.html", "deployments/_deployment_status.html",
                               ctx, stop_polling=not dep.is_active)
    if request.htmx and not dep.is_active:
        # The wizard's start button (disabled while this ran) listens for this and re-renders itself.
        trigger_client_event(response, "deployment-finished")
    return response


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
    return redirect(safe_next(request) or reverse("deployments:deployment_detail", args=[pk]))


# -- prerequisite checklist ---------------------------------------------------------------------------

@require_GET
@viewer_required
def checklist(request, name):
    cluster = get_cluster_or_404(name)
    run = cluster.check_runs.first()
    return page_or_partial(request, "deployments/checklist.html", "deployments/_checklist.html",
                           checklist_context(cluster, run), stop_polling=not run or bool(run.finished))


@require_POST
@operator_required
def checklist_run(request, name):
    cluster = get_cluster_or_404(name)
    services.start_checklist(request, cluster)
    return redirect(safe_next(request) or reverse("deployments:checklist", args=[name]))
