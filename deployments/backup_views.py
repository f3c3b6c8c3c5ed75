"""Pages for backups, restores and drift: the cluster's Backups page (list, Back up now, Check drift,
Repair) and the restore page, which says plainly that the app servers stop and wants the cluster's name
typed before it starts."""

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from joget_cluster.access import admin_required, operator_required, viewer_required
from nodes import audit
from nodes.shortcuts import get_cluster_or_404

from . import backups, drift, engine, services
from .models import Backup, BackupPolicy


class PolicyForm(forms.ModelForm):
    class Meta:
        model = BackupPolicy
        fields = ["every_hours", "keep", "before_operations", "drift_every_minutes"]


def cluster_context(cluster) -> dict:
    """What the cluster page's backups-and-drift card shows."""
    check = drift.latest(cluster)
    return {"drift_check": check, "recent_backups": list(cluster.backups.all()[:3]),
            "backs_up_first": backups.backs_up_first(cluster)}


@require_http_methods(["GET"])
@viewer_required
def backup_list(request, name):
    cluster = get_cluster_or_404(name)
    rows = [(b, backups.backup_state(b)) for b in cluster.backups.select_related("deployment")[:100]]
    policy = BackupPolicy.objects.filter(cluster=cluster).first() or BackupPolicy(cluster=cluster)
    return render(request, "deployments/backups.html", {"cluster": cluster, "rows": rows, "policy_form": PolicyForm(
        instance=policy), **cluster_context(cluster)})


@require_POST
@admin_required
def backup_policy(request, name):
    """The cluster's schedule: backups every N hours with retention, backup before operations, drift checks."""
    cluster = get_cluster_or_404(name)
    policy = BackupPolicy.objects.filter(cluster=cluster).first() or BackupPolicy(cluster=cluster)
    form = PolicyForm(request.POST, instance=policy)
    if form.is_valid():
        form.save()
        audit.record(request, audit.Action.CLUSTER_CHANGED, target=cluster,
                     details="backup policy: " + ", ".join(f"{k}={v}" for k, v in form.cleaned_data.items()))
        messages.success(request, "Backup and drift schedule saved.")
    else:
        messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
    return redirect(reverse("deployments:backup_list", args=[name]))


@require_POST
@operator_required
def backup_start(request, name):
    cluster = get_cluster_or_404(name)
    try:
        backup = services.start_backup(request, cluster)
    except engine.DeploymentRefused as exc:
        messages.error(request, str(exc))
        return redirect(reverse("deployments:backup_list", args=[name]))
    return redirect(reverse("deployments:deployment_detail", args=[backup.deployment_id]))


@require_http_methods(["GET", "POST"])
@operator_required
def backup_restore(request, name, backup_id):
    cluster = get_cluster_or_404(name)
    backup = get_object_or_404(Backup, cluster=cluster, backup_id=backup_id)
    error = ""
    if request.method == "POST":
        try:
            restore = services.start_restore(request, backup, confirm=request.POST.get("confirm", ""),
                                             exact=bool(request.POST.get("exact")))
        except (services.NotConfirmed, engine.DeploymentRefused) as exc:
            error = str(exc)
        else:
            return redirect(reverse("deployments:deployment_detail", args=[restore.deployment_id]))
    return render(request, "deployments/backup_restore.html",
                  {"cluster": cluster, "backup": backup, "state": backups.backup_state(backup), "error": error},
                  status=400 if error else 200)


@require_POST
@operator_required
def drift_check(request, name):
    cluster = get_cluster_or_404(name)
    try:
        check = services.start_drift_check(request, cluster)
    except engine.DeploymentRefused as exc:
        messages.error(request, str(exc))
        return redirect(reverse("deployments:backup_list", args=[name]))
    return redirect(reverse("deployments:deployment_detail", args=[check.deployment_id]))


@require_POST
@operator_required
def drift_repair(request, name):
    cluster = get_cluster_or_404(name)
    try:
        dep = services.repair_drift(request, cluster)
    except engine.DeploymentRefused as exc:
        messages.error(request, str(exc))
        return redirect(reverse("deployments:backup_list", args=[name]))
    return redirect(reverse("deployments:deployment_detail", args=[dep.pk]))
