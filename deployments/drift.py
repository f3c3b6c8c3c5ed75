"""Drift: the plan's probes, run without changing anything (a dry run of the engine), compared with what
the console last deployed. A step whose probe finds something to change on a node has drifted there; its
changes carry the diff. Repair deploys only the drifted steps.

Probes are side-effect free by the steps' contract (docs/steps.md), which the dry run already relies on,
so a drift check leaves nothing on the nodes. A failed probe is not drift: the check says it could not
check, and where.
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.request

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Q
from django.utils import timezone

from nodes.models import Cluster

from . import backups, engine
from .models import Deployment, DriftCheck, StepRun

log = logging.getLogger(__name__)
OPERATION_PREFIXES = ("backup.", "restore.")
# Steps that change what Tomcat reads at start (tomcat_tools.fingerprint_command): a repair of one of them also
# runs joget.running, whose probe restarts the nodes whose configuration changed since Tomcat started, node by
# node out of the balancer on a serving cluster (rolling.plan_runs), so no request fails.
READ_AT_START = ("tomcat.install", "tomcat.base", "replication.server_xml", "replication.hosts", "joget.setenv",
                 "joget.war", "joget.datasource")
RESTART_STEP = "joget.running"


def _is_operation(steps: list[str]) -> bool:
    return bool(steps) and all(s.startswith(OPERATION_PREFIXES) for s in steps)


def last_deployment(cluster: Cluster) -> Deployment | None:
    """The last succeeded deployment of the plan (not a dry run, a backup or a restore)."""
    for dep in cluster.deployments.filter(status=Deployment.Status.SUCCEEDED, dry_run=False).only("steps"):
        if not _is_operation(dep.steps):
            return dep
    return None


def start_check(cluster: Cluster, *, user=None) -> DriftCheck:
    """Run the plan's probes as a dry run; refused without a succeeded deployment (nothing to drift from)."""
    if last_deployment(cluster) is None:
        raise engine.DeploymentRefused(f"Cluster {cluster.name} has no succeeded deployment: nothing to drift from.")
    dep = engine.start(cluster, user=user, dry_run=True)
    return DriftCheck.objects.create(cluster=cluster, deployment=dep)


def findings_of(runs) -> tuple[list[dict], list[dict]]:
    """(drift, failures) from a dry run's step runs: every run that would change something, with each
    change's description and diff; every run whose probe failed. Pure over the rows' values."""
    drift, failed = [], []
    for run in runs:
        node = run.node.name if run.node_id else "cluster"
        if run.status == StepRun.Status.CHANGED:
            for c in run.changes or [{"description": run.message, "diff": ""}]:
                drift.append({"step": run.step, "node": node, "description": c.get("description", ""),
                              "diff": c.get("diff", "")})
        elif run.status in (StepRun.Status.FAILED, StepRun.Status.CANCELLED):
            failed.append({"step": run.step, "node": node, "description": f"could not probe: {run.message}",
                           "diff": ""})
    return drift, failed


def conclude(check: DriftCheck) -> DriftCheck:
    """Read the finished dry run into the check (once); send the event when it drifted."""
    if check.state != DriftCheck.State.RUNNING or check.deployment is None:
        return check
    dep = check.deployment
    dep.refresh_from_db(fields=["status"])
    if dep.is_active:
        return check
    drift, failed = findings_of(dep.runs.select_related("node"))
    check.findings = drift + failed
    check.state = (DriftCheck.State.DRIFTED if drift else
                   DriftCheck.State.FAILED if failed or dep.status != Deployment.Status.SUCCEEDED else
                   DriftCheck.State.CLEAN)
    check.finished = timezone.now()
    updated = DriftCheck.objects.filter(pk=check.pk, state=DriftCheck.State.RUNNING).update(
        findings=check.findings, state=check.state, finished=check.finished)
    if updated and check.state == DriftCheck.State.DRIFTED:
        notify(check)
    return check


def latest(cluster: Cluster) -> DriftCheck | None:
    check = cluster.drift_checks.select_related("deployment").first()
    return conclude(check) if check else None


def drifted_steps(check: DriftCheck) -> list[str]:
    return sorted({f["step"] for f in check.findings if not f["description"].startswith("could not probe")})


def repair_steps(check: DriftCheck) -> list[str]:
    """The drifted steps, and joget.running when one of them changes what Tomcat reads at start."""
    steps = drifted_steps(check)
    if set(steps) & set(READ_AT_START) and RESTART_STEP not in steps:
        steps.append(RESTART_STEP)
    return sorted(steps)


def repair(check: DriftCheck, *, user=None) -> Deployment:
    """A deployment of only the drifted steps (the engine orders them by their dependencies); a restart it needs
    rolls on a serving cluster."""
    steps = repair_steps(check)
    if not steps:
        raise engine.DeploymentRefused("Nothing drifted: nothing to repair.")
    return engine.start(check.cluster, user=user, steps=steps)


def describe(check: DriftCheck) -> list[str]:
    """Each step/node and its diff, as the command prints them."""
    out = []
    for f in check.findings:
        out.append(f"{f['step']} on {f['node']}: {f['description']}")
        out += [f"    {line}" for line in (f.get("diff") or "").splitlines()]
    return out


# -- the event, by mail and webhook as the status pages send theirs --------------------------------------

def payload(check: DriftCheck) -> dict:
    return {"cluster": check.cluster.name, "event": "drift", "state": check.state,
            "time": (check.finished or timezone.now()).isoformat(),
            "findings": [{"step": f["step"], "node": f["node"], "description": f["description"]}
                         for f in check.findings]}


def notify(check: DriftCheck) -> None:
    data = payload(check)
    where = sorted({f"{f['step']} on {f['node']}" for f in check.findings})
    recipients = list(getattr(settings, "HEALTH_ALERT_EMAIL", []) or [])
    if recipients:
        try:
            send_mail(f"[{check.cluster.name}] drifted: {', '.join(where)}"[:200], "\n".join(describe(check)),
                      None, recipients)
        except Exception:  # noqa: BLE001 - any mail failure is logged, never raised (as health events)
            log.exception("drift e-mail failed")
    url = getattr(settings, "HEALTH_WEBHOOK_URL", "")
    if url.startswith(("http://", "https://")):
        req = urllib.request.Request(url, data=json.dumps(data).encode(), method="POST",  # noqa: S310 - checked
                                     headers={"Content-Type": "application/json", "User-Agent": "joget-console"})
        try:
            with urllib.request.urlopen(req, timeout=getattr(settings, "HEALTH_WEBHOOK_TIMEOUT", 5.0)) as resp:  # noqa: S310
                resp.read(1024)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            log.warning("drift webhook %s failed: %s", url, exc)
    DriftCheck.objects.filter(pk=check.pk).update(notified=True)


# -- the schedule (Celery beat, every minute): scheduled backups with retention, drift checks ---------------

def periodic(now=None) -> None:
    from .models import Backup, BackupPolicy

    now = now or timezone.now()
    for check in DriftCheck.objects.filter(state=DriftCheck.State.RUNNING).select_related("deployment", "cluster"):
        conclude(check)
    for policy in BackupPolicy.objects.select_related("cluster").filter(Q(every_hours__gt=0) |
                                                                        Q(drift_every_minutes__gt=0)):
        cluster = policy.cluster
        try:
            if policy.every_hours:
                scheduled = cluster.backups.filter(reason=Backup.Reason.SCHEDULED)
                last = scheduled.first()
                if last is None or now - last.created >= timezone.timedelta(hours=policy.every_hours):
                    backups.start_backup(cluster, reason=Backup.Reason.SCHEDULED)
                    for old in list(scheduled.filter(state=Backup.State.COMPLETE)[policy.keep:]):
                        backups.delete_backup(old)
            if policy.drift_every_minutes and last_deployment(cluster) is not None:
                last_check = cluster.drift_checks.first()
                if last_check is None or now - last_check.created >= timezone.timedelta(
                        minutes=policy.drift_every_minutes):
                    start_check(cluster)
        except engine.DeploymentRefused as exc:  # another run of the cluster goes on: next minute
            log.info("schedule of %s waits: %s", cluster.name, exc)
