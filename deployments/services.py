"""What the console does when someone starts a deployment, a checklist, a backup, a restore or a drift check:
one code path for the pages, the REST API and (for deployments) the `deploy` command, which all go through
`engine.start` / `checklist.start` (backups.py and drift.py for backups, restores and drift).

`request` is the Django (or DRF) request of the user acting: the audit trail takes the actor and address from
it, and names the API token when the request carries one.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.db import transaction

from nodes import audit
from nodes.models import Artifact, Cluster

from . import backups, checklist, drift, engine, rolling, scale
from .models import Backup, CheckRun, Deployment, DriftCheck, Restore


class NotConfirmed(ValueError):
    """A restore was asked for without the cluster's name typed to confirm it; the message says what to type."""


def start_deployment(request, cluster: Cluster, *, dry_run: bool, steps: list[str]) -> Deployment:
    """Start a deployment (or dry run) of `cluster` as the request's user, and audit it.

    Raises engine.DeploymentRefused (UnknownSteps, DeploymentRunning, ...) with the reason.
    """
    dep = engine.start(cluster, user=request.user, dry_run=dry_run, steps=steps)
    kind = "dry run" if dep.dry_run else "deployment"
    audit.record(request, audit.Action.DEPLOYMENT_STARTED, target=f"deployment #{dep.pk}", cluster=cluster,
                 details=f"{kind}; steps: {', '.join(steps) or 'the whole plan'}")
    return dep


def start_checklist(request, cluster: Cluster) -> CheckRun:
    """Run the prerequisite checklist of `cluster` in the workers (results fill in live), and audit it."""
    run = checklist.start(cluster, request.user)
    audit.record(request, audit.Action.CHECKLIST_RUN, target=cluster, details=f"checklist #{run.pk}")
    return run


def cancel_deployment(request, dep: Deployment) -> None:
    """Ask the running steps of `dep` to stop (their remote commands are killed), and audit it."""
    engine.cancel(dep)
    audit.record(request, audit.Action.DEPLOYMENT_CANCELLED, target=f"deployment #{dep.pk}", cluster=dep.cluster)


def resume_deployment(request, dep: Deployment) -> None:
    """Continue `dep` from its failed steps (finished ones are re-probed), and audit it."""
    engine.resume(dep)
    audit.record(request, audit.Action.DEPLOYMENT_RESUMED, target=f"deployment #{dep.pk}", cluster=dep.cluster)


def retry_step(request, dep: Deployment, step: str) -> int:
    """Rerun `step` of `dep` on the nodes where it failed, and audit it; the number of runs queued again."""
    count = engine.retry(dep, step)
    audit.record(request, audit.Action.DEPLOYMENT_RETRIED, target=f"deployment #{dep.pk}", cluster=dep.cluster,
                 details=f"step {step}")
    return count


def store_artifact(request, cluster: Cluster, kind: str, upload) -> Artifact:
    """Keep an uploaded file (jw.war, a Tomcat archive, the schema) as the cluster's artifact of that kind,
    replacing the one before, with its size and SHA-256; audited. The next deployment installs it."""
    size, sha = Artifact.digest(upload)  # reads the spooled temp file in 1 MB chunks
    with transaction.atomic():
        Artifact.delete_with_files(Artifact.objects.filter(cluster=cluster, kind=kind))
        art = Artifact(cluster=cluster, kind=kind, original_name=upload.name[:255], size=size, sha256=sha)
        art.file.save(upload.name, upload, save=False)
        art.save()
    audit.record(request, audit.Action.ARTIFACT_UPLOADED, target=cluster,
                 details=f"{art.get_kind_display()} {art.original_name}: {size} bytes, sha256 {sha}")
    return art


# -- backups, restores, drift ---------------------------------------------------------------------------------

def start_backup(request, cluster: Cluster) -> Backup:
    """Back `cluster` up now (a run of the backup steps), and audit it. Raises engine.DeploymentRefused."""
    backup = backups.start_backup(cluster, user=request.user)
    audit.record(request, audit.Action.DEPLOYMENT_STARTED, target=f"deployment #{backup.deployment_id}",
                 cluster=cluster, details=f"backup {backup.backup_id}")
    return backup


def start_restore(request, backup: Backup, *, confirm: str, exact: bool) -> Restore:
    """Restore `backup` to its cluster (the app servers stop), once `confirm` is the cluster's name; audited.
    Raises NotConfirmed (nothing started) or engine.DeploymentRefused."""
    cluster = backup.cluster
    if (confirm or "").strip() != cluster.name:
        raise NotConfirmed(f"Type the cluster's name, {cluster.name}, to confirm.")
    restore = backups.start_restore(backup, user=request.user, exact=exact)
    audit.record(request, audit.Action.DEPLOYMENT_STARTED, target=f"deployment #{restore.deployment_id}",
                 cluster=cluster, details=f"restore of backup {backup.backup_id}{' (exact)' if restore.exact else ''}")
    return restore


def start_drift_check(request, cluster: Cluster) -> DriftCheck:
    """Check `cluster` for drift (the plan's probes as a dry run), and audit it. Raises engine.DeploymentRefused."""
    check = drift.start_check(cluster, user=request.user)
    audit.record(request, audit.Action.DEPLOYMENT_STARTED, target=f"deployment #{check.deployment_id}",
                 cluster=cluster, details=f"drift check #{check.pk}")
    return check


def repair_drift(request, cluster: Cluster) -> Deployment:
    """Deploy only the steps the latest drift check found drifted, and audit it. Raises engine.DeploymentRefused
    (no check yet, nothing drifted, another run going on)."""
    check = drift.latest(cluster)
    if check is None:
        raise engine.DeploymentRefused("No drift check yet.")
    dep = drift.repair(check, user=request.user)
    audit.record(request, audit.Action.DEPLOYMENT_STARTED, target=f"deployment #{dep.pk}", cluster=cluster,
                 details=f"drift repair; steps: {', '.join(dep.steps)}")
    return dep


# -- rolling operations and balancer members ------------------------------------------------------------

def start_operation(request, cluster: Cluster, operation: str, *, war=None, nodes: list[str] | None = None,
                    batch: int | None = None, backup_first: bool | None = None) -> Deployment:
    """Start a rolling operation (restart, upgrade with `war`, rollback) of `cluster`, and audit it. An upgrade
    backs the cluster up first unless `backup_first` is False or the cluster's setting is off.
    `request` may be None (the command line). Raises engine.DeploymentRefused with the reason."""
    user = getattr(request, "user", None)
    dep = rolling.start(cluster, operation, user=user if user and user.is_authenticated else None, war=war,
                        nodes=nodes, batch=batch, backup_first=backup_first)
    details = f"{dep.get_operation_display()}; batch {dep.options.get('batch', 1)}"
    if dep.options.get("backup_first"):
        details += f"; backed up first: backup {dep.options['backup_first']}"
    if nodes:
        details += f"; nodes {', '.join(nodes)}"
    if war is not None:
        details += f"; new jw.war {getattr(war, 'name', war)} (Joget {dep.options.get('version', '?')})"
    audit.record(request, audit.Action.DEPLOYMENT_STARTED, target=f"deployment #{dep.pk}", cluster=cluster,
                 details=details)
    return dep


def start_upgrade(request, cluster: Cluster, upload, *, batch: int | None = None,
                  backup_first: bool | None = None) -> Deployment:
    """Roll `cluster` out to an uploaded jw.war (a Django UploadedFile), as start_operation does with a path: the
    upload is spooled into a private temporary directory under its own name, which the refusals name. Raises
    engine.DeploymentRefused (engine.InvalidOption for a WAR of another major version, or not a WAR)."""
    with tempfile.TemporaryDirectory(prefix="jcc-upgrade-") as tmp:
        war = Path(tmp) / (Path(upload.name or "").name or "jw.war")
        with war.open("wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        return start_operation(request, cluster, Deployment.Operation.UPGRADE, war=war, batch=batch,
                               backup_first=backup_first)


def set_member_state(request, node, state: str) -> Deployment:
    """Keep `node`'s member state (enabled, disabled, drain) and apply it: at runtime through balancer-manager and
    in the balancer's site file (so a reload or a redeploy keeps it), as a run of its own; audited."""
    from nodes.models import BalancerState, Node

    if state not in BalancerState.values:
        raise engine.InvalidOption(f"Unknown member state {state!r}: use {', '.join(BalancerState.values)}.", "state")
    if not node.is_app_server:
        raise engine.InvalidOption(f"{node.name} is not an app server: it is no member of the balancer.", "node")
    before = node.balancer_state
    with transaction.atomic():
        Node.objects.filter(pk=node.pk).update(balancer_state=state)
        user = getattr(request, "user", None)
        dep = rolling.start(node.cluster, Deployment.Operation.MEMBERS,
                            user=user if user and user.is_authenticated else None)
    audit.record(request, audit.Action.DEPLOYMENT_STARTED, target=node, cluster=node.cluster,
                 details=f"balancer member {node.name}: {before} → {state} (deployment #{dep.pk})")
    return dep


def start_scale(request, cluster: Cluster, operation: str, **options) -> Deployment:
    """Add (scale out) or remove (scale in) an app server of `cluster` through deployments.scale.start, and audit
    it. `request` may be None (the command line). Raises engine.DeploymentRefused with nothing changed."""
    user = getattr(request, "user", None)
    dep = scale.start(cluster, operation, user=user if user and user.is_authenticated else None, **options)
    node = dep.options.get("node", "")
    if operation == Deployment.Operation.SCALE_OUT:
        details = (f"add app server {node} ({options.get('address')}, route {options.get('jvm_route')}); "
                   f"deployment #{dep.pk}")
        audit.record(request, audit.Action.NODE_CREATED, target=f"{node} ({options.get('address')})",
                     cluster=cluster, details=details)
    else:
        details = f"remove app server {node}; deployment #{dep.pk}"
    if dep.options.get("backup_first"):
        details += f"; backed up first: backup {dep.options['backup_first']}"
    audit.record(request, audit.Action.DEPLOYMENT_STARTED, target=f"deployment #{dep.pk}", cluster=cluster,
                 details=details)
    return dep
