"""Adding an app server to a serving cluster ("Add an app server" on the cluster page): its details → the host key
it offers, confirmed → the prerequisite checks for that node and the plan, reviewed → the run, whose page shows
its live log. Removing one: what happens, confirmed → the run. Both through deployments.scale (services)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from joget_cluster.access import admin_required
from nodes import ssh
from nodes import validators as v
from nodes.shortcuts import get_cluster_or_404

from . import engine, rolling, scale, services
from .models import Deployment

Op = Deployment.Operation


class AddNodeForm(forms.Form):
    """The new app server; the model's own validators (the API's serializer uses this form too)."""

    name = forms.CharField(max_length=63, validators=[v.validate_name], help_text="e.g. app3")
    address = forms.CharField(max_length=253, validators=[v.validate_address], help_text="IP address or host name")
    ssh_port = forms.IntegerField(label="SSH port", initial=22, validators=[v.validate_port])
    ssh_user = forms.CharField(label="SSH user", max_length=32, initial="root", validators=[v.validate_posix_user])
    jvm_route = forms.CharField(label="jvmRoute", max_length=32, validators=[v.validate_jvm_route],
                                help_text="Unique in the cluster; a replacement may take over a removed node's route.")


STAGES = (("details", "The node"), ("host_key", "Its host key"), ("review", "Checks and plan"), ("run", "The run"))


def _page(request, cluster, stage, form, **extra):
    n = next(i for i, (key, _) in enumerate(STAGES, 1) if key == stage)
    return render(request, "deployments/scale_add.html", {"cluster": cluster, "stage": stage, "stage_n": n,
                                                          "stages": STAGES, "form": form, **extra})


@require_http_methods(["GET", "POST"])
@admin_required
def add_node(request, name):
    cluster = get_cluster_or_404(name)
    lb = cluster.layer("load_balancer")
    if not (lb and lb.node_id) or not rolling.serving(cluster):
        # Not serving yet: the node goes into the inventory and the next deployment sets it up.
        return redirect("nodes:node_create", cluster.name)
    form = AddNodeForm(request.POST or None)
    if request.method == "GET" or not form.is_valid():
        return _page(request, cluster, "details", form)
    values = form.cleaned_data
    stage = request.POST.get("stage", "details")
    if stage == "details":  # ask the host for its key, to be confirmed
        try:
            offered = ssh.fetch_host_key(values["address"], values["ssh_port"], timeout=10)
        except ssh.SSHError as exc:
            form.add_error("address", str(exc))
            return _page(request, cluster, "details", form)
        return _page(request, cluster, "host_key", form, host_key=offered, fingerprint=ssh.fingerprint(offered))
    host_key = request.POST.get("host_key", "")
    try:
        fingerprint = ssh.fingerprint(host_key)
    except ssh.SSHError:
        form.add_error(None, "The host key was lost on the way: start again.")
        return _page(request, cluster, "details", form)
    if request.POST.get("fingerprint") != fingerprint:
        form.add_error(None, "Confirm the host key the node offered.")
        return _page(request, cluster, "details", form)
    values = {**values, "host_key": host_key}
    if stage == "review":  # the key confirmed: the checks for that node and the plan
        node = scale.candidate(cluster, **values)
        checks = scale.node_checks(cluster, node)
        return _page(request, cluster, "review", form, host_key=host_key, fingerprint=fingerprint, node=node,
                     checks=checks, failed=[c for c in checks if c["status"] == "fail"],
                     plan=scale.plan_lines(cluster, node, Op.SCALE_OUT))
    try:
        dep = services.start_scale(request, cluster, Op.SCALE_OUT, **values)
    except engine.DeploymentRefused as exc:
        field = getattr(exc, "field", None)
        form.add_error(field if field in form.fields else None, str(exc))
        return _page(request, cluster, "details", form)
    return redirect(reverse("deployments:deployment_detail", args=[dep.pk]))


@require_POST
@admin_required
def remove_node(request, name):
    cluster = get_cluster_or_404(name)
    node = request.POST.get("node", "")
    try:
        dep = services.start_scale(request, cluster, Op.SCALE_IN, node=node)
    except engine.DeploymentRefused as exc:
        messages.error(request, str(exc))
        return redirect(cluster.get_absolute_url())
    return redirect(reverse("deployments:deployment_detail", args=[dep.pk]))
