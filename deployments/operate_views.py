"""The cluster page's day-2 levers: each app server's member state in the balancer (as Apache reports it, read
live from balancer-manager, and Disable / Enable / Drain), and the rolling operations (restart, upgrade,
rollback), each a run of the engine whose page shows it node by node."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from joget_cluster.access import Role, operator_required, require_role, viewer_required
from nodes.models import BalancerState, Node
from nodes.shortcuts import get_cluster_or_404

from . import engine, services
from .models import Deployment
from .steps import StepFailed
from .steps.members import Manager

OPERATIONS = {"restart": Deployment.Operation.RESTART, "upgrade": Deployment.Operation.UPGRADE,
              "rollback": Deployment.Operation.ROLLBACK}


def member_rows(cluster) -> tuple[list[dict], str]:
    """Each app server ({"node", "member"}: the Node, and Apache's Member or None) as balancer-manager reports it
    now, and why it could not be read ("" when it could); for the members card and the API."""
    reported, error = {}, ""
    try:
        reported = Manager(cluster).members()
    except StepFailed as exc:
        error = str(exc)
    return [{"node": n, "member": reported.get(n.jvm_route)} for n in cluster.app_servers()], error


@require_GET
@viewer_required
def members(request, name):
    """The members card (loaded by the cluster page, polled while a run goes on): kept and reported states."""
    cluster = get_cluster_or_404(name)
    rows, error = member_rows(cluster)
    running = cluster.deployments.filter(status=Deployment.Status.RUNNING).exists()
    response = render(request, "deployments/_cluster_members.html",
                      {"cluster": cluster, "rows": rows, "error": error, "running": running,
                       "states": BalancerState.choices})
    if not running:  # what Apache reports changes only while a run goes on: no poll meanwhile
        response.status_code = HttpResponseStopPolling.status_code
    return response


@require_POST
@operator_required
def member_state(request, name, node):
    cluster = get_cluster_or_404(name)
    target = Node.objects.filter(cluster=cluster, name=node, is_app_server=True).first()
    state = request.POST.get("state", "")
    if target is None or state not in BalancerState.values:
        messages.error(request, "Choose an app server of this cluster and a state: enabled, disabled or drain.")
        return redirect(cluster.get_absolute_url())
    try:
        dep = services.set_member_state(request, target, state)
    except engine.DeploymentRefused as exc:
        messages.error(request, str(exc))
        return redirect(cluster.get_absolute_url())
    return redirect(reverse("deployments:deployment_detail", args=[dep.pk]))


@require_POST
@operator_required
def operate(request, name, operation):
    cluster = get_cluster_or_404(name)
    if operation not in OPERATIONS:
        messages.error(request, f"Unknown operation {operation!r}.")
        return redirect(cluster.get_absolute_url())
    if operation == "upgrade":
        require_role(request, Role.ADMIN)  # it uploads the cluster's new jw.war: artifacts are the admin's
    batch = int(request.POST["batch"]) if request.POST.get("batch", "").isdigit() else None
    upload = request.FILES.get("war")
    if operation == "upgrade" and upload is None:
        messages.error(request, "Choose the new jw.war to upgrade to.")
        return redirect(cluster.get_absolute_url())
    try:
        if operation == "upgrade":
            dep = services.start_upgrade(request, cluster, upload, batch=batch,
                                         backup_first=False if request.POST.get("no_backup") else None)
        else:
            dep = services.start_operation(request, cluster, OPERATIONS[operation], batch=batch)
    except engine.DeploymentRefused as exc:
        messages.error(request, str(exc))
        return redirect(cluster.get_absolute_url())
    return redirect(reverse("deployments:deployment_detail", args=[dep.pk]))
