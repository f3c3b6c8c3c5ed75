"""The deployment engine: plan, dispatch, run, retry, resume, cancel, sweep.

The database holds the plan's state (StepRun rows). `advance()` looks at it
under a row lock on the Deployment and queues every step run whose
dependencies have succeeded; `run_step()` claims its row atomically, runs the
step over SSH and calls `advance()` again. A worker that dies loses only the
step it held: the sweeper marks it failed and `resume()` carries on.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import DatabaseError, IntegrityError, close_old_connections, transaction
from django.db.models import F
from django.utils import timezone

from nodes import audit, ssh
from nodes.models import Cluster, Node
from nodes.secrets import cluster_secrets, masker

from .dbretry import through_restart
from .logbuffer import LogBuffer, flusher
from .models import Deployment, LogLine, StepRun
from .refusals import DeploymentRefused, DeploymentRunning, InvalidOption, UnknownSteps  # noqa: F401 - callers: engine.X
from .steps import StepContext, StepFailed, get_step, plan_steps

log = logging.getLogger(__name__)
events = logging.getLogger("deployments.events")  # what an admin watching the terminal wants to see
RunStatus = StepRun.Status
FAILED_LIKE = (RunStatus.FAILED, RunStatus.SKIPPED, RunStatus.CANCELLED)


# -- starting ---------------------------------------------------------------------------------------

def start(cluster: Cluster, *, user=None, dry_run: bool = False, steps: list[str] | None = None,
          operation: str = Deployment.Operation.DEPLOY, options: dict | None = None) -> Deployment:
    """A deployment of the plan (or of `steps`); `operation` and `options` name a day-2 operation, whose plan
    deployments.rolling gives (its rolling steps run node by node, in waves)."""
    from . import rolling

    options = options or {}
    try:
        plan = plan_steps(cluster, only=steps)
    except KeyError as exc:
        raise UnknownSteps(str(exc.args[0])) from None
    if not plan:
        raise DeploymentRefused(f"Nothing to do: no step applies to cluster {cluster.name}.")
    try:
        runs = rolling.plan_runs(cluster, plan, options, dry_run=dry_run)
    except rolling.RollRefused as exc:
        raise exc.refusal() from None
    except StepFailed as exc:  # a step with nothing to run on (e.g. a backup of a cluster without a database)
        raise DeploymentRefused(str(exc)) from None
    if not runs:
        raise DeploymentRefused("The plan has no node to run on: add nodes with the needed roles.")
    unpinned = sorted({n.name for _, _, n, _ in runs if n is not None and not n.host_key})
    if unpinned:
        raise DeploymentRefused(
            f"Host keys not confirmed for: {', '.join(unpinned)}. Use 'Connect' on each node page first."
        )
    try:
        with transaction.atomic():
            _refuse_if_running(cluster)
            dep = Deployment.objects.create(cluster=cluster, started_by=user, dry_run=dry_run, steps=steps or [],
                                            operation=operation, options=options)
            StepRun.objects.bulk_create(
                StepRun(deployment=dep, step=step.key, position=pos, node=node, wave=wave)
                for pos, step, node, wave in runs
            )
            transaction.on_commit(lambda: _first_advance(dep.pk))
            transaction.on_commit(lambda: events.info("%s started: %d step runs", str(dep).capitalize(), len(runs)))
    except IntegrityError:
        # Another start won the race between our check and our insert.
        _refuse_if_running(cluster)
        raise
    return dep


def _refuse_if_running(cluster: Cluster) -> None:
    running = Deployment.objects.filter(cluster=cluster, status=Deployment.Status.RUNNING).first()
    if running:
        who = running.started_by.get_username() if running.started_by else "the command line"
        raise DeploymentRunning(
            f"{str(running).capitalize()} is running (started {running.created:%Y-%m-%d %H:%M:%S} by {who}). "
            "Wait for it to finish or cancel it first.", running,
        )


def _first_advance(deployment_id: int) -> None:
    """Queue the first steps from here (the request or command that started the deployment): a broker
    round trip less before anything runs. Should that fail, a worker does it."""
    try:
        advance(deployment_id)
    except DatabaseError:
        log.exception("advancing deployment %s in place failed; a worker will", deployment_id)
        _enqueue_advance(deployment_id)


def _enqueue_advance(deployment_id: int) -> None:
    from .tasks import advance_deployment

    advance_deployment.delay(deployment_id)


def _enqueue_run(run_id: int) -> None:
    from .tasks import run_step

    run_step.delay(run_id)


def _enqueue_runs(run_ids: list[int]) -> None:
    from .tasks import run_steps

    if len(run_ids) == 1:
        _enqueue_run(run_ids[0])
    else:
        run_steps.delay(run_ids)


# -- advancing --------------------------------------------------------------------------------------

def advance(deployment_id: int) -> None:
    """Queue whatever can run now; finish the deployment when nothing is left."""
    with transaction.atomic():
        dep = Deployment.objects.select_for_update().get(pk=deployment_id)
        if dep.status != Deployment.Status.RUNNING:
            return
        runs = list(dep.runs.all())
        if dep.cancel_requested:
            StepRun.objects.filter(deployment=dep, status__in=[RunStatus.PENDING, RunStatus.QUEUED]).update(
                status=RunStatus.CANCELLED, finished=timezone.now(), message="Cancelled before it started."
            )
            runs = list(dep.runs.all())
        by_step: dict[str, list[StepRun]] = {}
        for r in runs:
            by_step.setdefault(r.step, []).append(r)
        to_queue: list[StepRun] = []
        for r in runs:
            if r.status != RunStatus.PENDING:
                continue
            blocking = [] if dep.dry_run else [
                other for d in depends_on(dep, r.step) for other in by_step.get(d, [])
            ] + [other for other in by_step[r.step] if other.wave < r.wave]  # a roll: the waves before
            failed = [o for o in blocking if o.status in FAILED_LIKE]
            if failed:
                r.status, r.finished = RunStatus.SKIPPED, timezone.now()
                r.message = _skip_reason(r, failed)
                r.save(update_fields=["status", "finished", "message"])
            elif all(o.status in StepRun.DONE for o in blocking):
                to_queue.append(r)
        if to_queue:
            StepRun.objects.filter(pk__in=[r.pk for r in to_queue]).update(status=RunStatus.QUEUED,
                                                                           heartbeat=timezone.now())
            by_key: dict[str, list[int]] = {}
            for r in to_queue:
                by_key.setdefault(r.step, []).append(r.pk)
            for pks in by_key.values():  # one task per step, running its nodes together
                transaction.on_commit(lambda pks=pks: _enqueue_runs(pks))
        statuses = list(dep.runs.values_list("status", flat=True))
        if all(s in StepRun.FINISHED for s in statuses):
            if dep.cancel_requested:
                dep.status = Deployment.Status.CANCELLED
            elif any(s in FAILED_LIKE for s in statuses):
                dep.status = Deployment.Status.FAILED
            else:
                dep.status = Deployment.Status.SUCCEEDED
            dep.finished = timezone.now()
            dep.save(update_fields=["status", "finished"])
            transaction.on_commit(lambda: pool.close_deployment(deployment_id))
            recap = " ".join(f"{k}={v}" for k, v in dep.recap().items())
            transaction.on_commit(lambda: events.info("%s %s: %s", str(dep).capitalize(), dep.status, recap))
            if dep.status == Deployment.Status.SUCCEEDED and not dep.dry_run and "joget.running" in by_step:
                transaction.on_commit(lambda: _read_system_keys(dep.cluster_id))


def _skip_reason(run: StepRun, blocking: list[StepRun]) -> str:
    """Name the run that really failed: on this run's own node if one did, and a skipped one's cause
    rather than the skip (its message already names the root)."""
    def rank(o: StepRun) -> tuple[bool, bool]:
        return (o.status == RunStatus.SKIPPED, o.node_id not in (None, run.node_id))

    cause = min(blocking, key=rank)
    if cause.status == RunStatus.SKIPPED and cause.message.startswith("Skipped: "):
        return cause.message
    where = f" on {cause.node.name}" if cause.node_id else ""
    return f"Skipped: {cause.step}{where} did not succeed ({cause.status})."


def _read_system_keys(cluster_id: int) -> None:
    """Joget now runs on every app server: read each node's system key, so the Licenses page has them
    without a detour (needs the cluster's Joget admin login)."""
    from licensing.services import request_reads

    cluster = Cluster.objects.get(pk=cluster_id)
    if cluster.joget_admin_password:
        request_reads(cluster)


# -- running one step on one node ---------------------------------------------------------------------

class ConnectionPool:
    """One SSH connection per node per deployment per worker process, reused by
    every step (opening one costs ~100-200 ms; a command on an open one ~35 ms)."""

    IDLE = 120.0

    def __init__(self):
        self._lock = threading.Lock()
        self._conns: dict[tuple[int, int], tuple[ssh.NodeConnection, float]] = {}
        self._opening: dict[tuple[int, int], threading.Lock] = {}

    def get(self, deployment_id: int, node: Node) -> ssh.NodeConnection:
        key = (deployment_id, node.pk)
        now = time.monotonic()
        with self._lock:
            for k, (c, used) in list(self._conns.items()):
                if now - used > self.IDLE:
                    c.close()
                    del self._conns[k]
                    self._opening.pop(k, None)
            opening = self._opening.setdefault(key, threading.Lock())
        # One connect per node: the steps that start on a node at once wait for the first one's
        # connection instead of each opening (and then leaking) their own.
        with opening:
            with self._lock:
                entry = self._conns.get(key)
                if entry and entry[0].target.host_key == node.host_key and entry[0].is_active:
                    self._conns[key] = (entry[0], now)
                    return entry[0]
                if entry:  # dropped while idle (the node rebooted): open a new one
                    entry[0].close()
                    del self._conns[key]
            try:
                conn = ssh.open_connection(node).open()
            except ssh.HostKeyMismatch as exc:
                _record_offered_key(node, exc.offered)
                raise
            with self._lock:
                self._conns[key] = (conn, now)
            return conn

    def discard(self, deployment_id: int, node: Node) -> None:
        with self._lock:
            entry = self._conns.pop((deployment_id, node.pk), None)
        if entry:
            entry[0].close()

    def close_deployment(self, deployment_id: int) -> None:
        with self._lock:
            keys = [k for k in self._conns if k[0] == deployment_id]
            entries = [self._conns.pop(k) for k in keys]
            for k in [k for k in self._opening if k[0] == deployment_id]:
                del self._opening[k]
        for conn, _ in entries:
            conn.close()


pool = ConnectionPool()


def _record_offered_key(node: Node, offered: str) -> None:
    """Put the key the server offers now on the node page, beside the pinned one, for the admin to
    compare and confirm (the same fields the Connect button fills)."""
    if offered:
        # Only a newly offered key gets a new time: the audit trail keeps one event per offered key.
        Node.objects.filter(pk=node.pk, host_key=node.host_key).exclude(offered_host_key=offered).update(
            offered_host_key=offered, offered_host_key_error="", offered_host_key_at=timezone.now()
        )
        # Seen by a worker, not by an admin: the audit trail still gets it (once per offered key).
        audit.record_host_key_mismatch(None, Node.objects.get(pk=node.pk), ssh.fingerprint(offered),
                                       ssh.fingerprint(node.host_key))


def _pidfile(run_id: int) -> str:
    # In a directory only root can enter (created 0700 by the wrapper): nobody else can plant a pid for Cancel.
    return f"{STEP_PID_DIR}/{int(run_id)}.pid"


STEP_PID_DIR = "/run/jcc-steps"


def _cancellable(run_id: int):
    """Run each command in its own session and note its process group (pid and start time), so that
    Cancel can kill exactly what this step started on the node."""
    pidfile = ssh.quote(_pidfile(run_id))

    def wrap(command: str) -> str:
        # Shell built-ins only (this runs before every command); field 22 of /proc/PID/stat is the start time.
        # The pid file goes when the command ends (not exec'd: the shell stays to remove it), so probes leave
        # nothing behind on the node (drift checks run them on a schedule).
        inner = (f"[ -d {STEP_PID_DIR} ] || mkdir -m 0700 -p {STEP_PID_DIR}; c=$1; read -r s < /proc/$$/stat; "
                 f"set -- ${{s##*) }}; echo \"$$ ${{20}}\" > {pidfile}; sh -c \"$c\"; r=$?; rm -f {pidfile}; "
                 "exit $r")
        return f"setsid -w sh -c {ssh.quote(inner)} jcc {ssh.quote(command)}"

    return wrap


def _kill_remote(node: Node, run_id: int) -> None:
    # Only a group this run started: a pid above 1 whose process still has the start time noted with it.
    check = (f"read -r p t < {ssh.quote(_pidfile(run_id))} && case $p in ''|*[!0-9]*) exit 1;; esac && "
             "[ \"$p\" -gt 1 ] && read -r s < /proc/$p/stat && set -- ${s##*) } && [ \"${20}\" = \"$t\" ] && "
             "kill -TERM -- -\"$p\"")
    try:
        with ssh.open_connection(node) as c:
            c.run(check, timeout=15)
    except ssh.SSHError as exc:
        log.warning("cancel of run %s on %s: %s", run_id, node.name, exc)


def run_step(run_id: int) -> None:
    run_steps([run_id])


def run_steps(run_ids: list[int]) -> None:
    """Runs of one step (on its nodes), at once: claimed in one statement, the deployment, cluster and
    secrets loaded once for all of them, each run in a thread of the process's step pool. At 16 app
    servers a task and these loads per run were a fifth of the worker's CPU, on a machine whose two
    cores the hosts' sshd also need."""
    token = f"{socket.gethostname()}:{uuid.uuid4().hex[:12]}"
    now = timezone.now()
    # Retried while the database refuses connections (restarting, or out of connection slots when many
    # steps start at once): the runs then wait for a slot instead of staying queued until the sweeper.
    claimed = through_restart(lambda: StepRun.objects.filter(pk__in=run_ids, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, started=now, heartbeat=now, finished=None, exit_code=None, message="", hint="",
        changes=[], worker=token, attempt=F("attempt") + 1,
    ))
    if not claimed:
        return  # another worker has them, or they were cancelled meanwhile
    try:
        _run_claimed(token, run_ids)
    except Exception as exc:  # noqa: BLE001 - a console bug fails its runs now, with its reason, not by silence
        log.exception("runs %s failed inside the console", run_ids)
        _fail_claimed(token, run_ids, exc)


def _run_claimed(token: str, run_ids: list[int]) -> None:
    runs = list(StepRun.objects.filter(pk__in=run_ids, worker=token, status=RunStatus.RUNNING).select_related(
        "deployment__cluster__credential", "node__credential"))
    if not runs:
        return
    dep = runs[0].deployment
    for run in runs:
        run.deployment = dep  # one cluster object (and its caches) for every run of the batch
    secrets = cluster_secrets(dep.cluster)
    # Each run's log buffer joins the flusher now: a run that waits for a free step thread keeps its
    # heartbeat (the sweeper would take its silence for a dead worker) and sees a Cancel.
    buffers = [LogBuffer(run, secrets, on_cancel=_canceller(run)) for run in runs]
    for buf in buffers:
        flusher.add(buf)
    try:
        if len(runs) == 1:
            _execute(runs[0], buffers[0])
        else:
            list(step_threads().map(_in_step_thread, runs, buffers))
    except BaseException:
        for buf in buffers:  # no heartbeat for runs that are about to be failed
            flusher.remove(buf)
        raise
    _advance_after(dep.pk, runs[0].step)


def _advance_after(deployment_id: int, step: str) -> None:
    # Dependencies are whole steps: a run whose step still runs on other nodes cannot make anything
    # ready, so only the last of them to finish advances (sparing the deployment row's lock at scale).
    # Each run's status is committed before it looks, so the last to commit always sees all finished.
    # (Runs still pending wait for this one: a roll's next wave.)
    siblings = StepRun.objects.filter(deployment_id=deployment_id, step=step,
                                      status__in=[RunStatus.QUEUED, RunStatus.RUNNING])
    if not through_restart(siblings.exists):
        through_restart(lambda: advance(deployment_id))


def _fail_claimed(token: str, run_ids: list[int], exc: Exception) -> None:
    """The runs this worker claimed but could not carry to an outcome fail at once with the real reason in
    their log and message (the admin would otherwise wait for the sweeper's "went silent")."""
    close_old_connections()  # the error may have left this thread's connection unusable
    first = str(exc).splitlines()[0][:500] if str(exc) else ""
    message = f"Internal error in the console: {type(exc).__name__}: {first}; see the worker log."
    try:
        # Whatever a secret could be, it is not to be shown: mask with the cluster's secrets when they load.
        dep_id = StepRun.objects.filter(pk=run_ids[0]).values_list("deployment_id", flat=True).first()
        dep = Deployment.objects.select_related("cluster").get(pk=dep_id)
        message = masker(cluster_secrets(dep.cluster))(message)
    except Exception:  # noqa: BLE001, S110 - loading the secrets may be what failed: the message stays as it is
        pass
    mine = StepRun.objects.filter(pk__in=run_ids, worker=token, status=RunStatus.RUNNING)
    failed = list(mine.values_list("pk", "deployment_id", "step", "last_seq"))
    now = timezone.now()
    LogLine.objects.bulk_create(LogLine(run_id=pk, seq=seq + 1, stream="info", text=f"FAILED: {message}", time=now)
                                for pk, _, _, seq in failed)
    for pk, _, _, seq in failed:
        StepRun.objects.filter(pk=pk, worker=token, status=RunStatus.RUNNING).update(
            status=RunStatus.FAILED, finished=now, message=message[:4000], last_seq=seq + 1, hint="")
    for dep_id, step in {(d, st) for _, d, st, _ in failed}:
        _advance_after(dep_id, step)


_step_threads: ThreadPoolExecutor | None = None
_step_threads_lock = threading.Lock()


def step_threads() -> ThreadPoolExecutor:
    """The process's threads for step runs: long-lived, so each keeps its database connection."""
    global _step_threads
    with _step_threads_lock:
        if _step_threads is None:
            _step_threads = ThreadPoolExecutor(settings.STEP_THREADS, thread_name_prefix="step")
        return _step_threads


def _in_step_thread(run: StepRun, buf: LogBuffer) -> None:
    # What Celery does around a task for its own threads: drop a connection that is too old or broken
    # (health-checked at its next use), so a database restart between runs costs no run.
    close_old_connections()
    _execute(run, buf)


def _canceller(run: StepRun):
    node = run.node
    return (lambda: _kill_remote(node, run.pk)) if node else None


def _execute(run: StepRun, buf: LogBuffer) -> None:
    """One claimed run, start to stored outcome; never raises (a step bug fails the step). Its log
    buffer masks the cluster's secrets, here too for what is stored on the run."""
    run_id, step, mask = run.pk, get_step(run.step), buf.mask
    exit_code, changes = None, []
    with buf:
        if buf.cancelled:  # while it waited for a step thread
            status, message = RunStatus.CANCELLED, "Cancelled before it started."
            buf.info(f"CANCELLED: {message}")
        else:
            status, message, exit_code, changes = _run(run, step, buf)
    # The database may have restarted while the step ran: these reconnect rather than lose its outcome.
    through_restart(lambda: StepRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
        status=status, finished=timezone.now(), exit_code=exit_code, message=mask(message)[:4000],
        hint=step.hint if status == RunStatus.FAILED else "",
        changes=[{k: mask(v) for k, v in c.items()} for c in changes],
    ))


def _run(run: StepRun, step, buf: LogBuffer) -> tuple[str, str, int | None, list[dict]]:
    """Probe, apply, verify: (status, message, exit code, changes)."""
    run_id, dep, node = run.pk, run.deployment, run.node
    status, message, exit_code, changes = RunStatus.FAILED, "", None, []
    buf.info(f"{'Probing' if dep.dry_run else 'Running'} {step.title or step.key}"
             f"{' on ' + node.name if node else ''} (attempt {run.attempt})")
    ctx = StepContext(
        cluster=dep.cluster, node=node, conn=None, log=buf.info, emit=buf.emit,
        connect=lambda other: pool.get(dep.pk, other), wrap=_cancellable(run_id), dry_run=dep.dry_run,
        deployment=dep, rolling=run.wave > 0,
    )
    try:
        ctx.conn = pool.get(dep.pk, node) if node else None
        planned = step.probe(ctx)
        changes = [c.as_json() for c in planned]
        if dep.dry_run:
            for c in planned:
                buf.info(f"would {c.description}")
            status = RunStatus.CHANGED if planned else RunStatus.OK
            message = ("Would " + "; ".join(c.description for c in planned)) if planned else "Nothing to change."
        else:
            if planned:
                step.apply(ctx, planned)
            step.verify(ctx)
            status = RunStatus.CHANGED if planned else RunStatus.OK
            message = "; ".join(c.description for c in planned) if planned else "Already as planned: no change."
    except StepFailed as exc:
        message, exit_code = str(exc), exc.exit_code
    except ssh.SSHError as exc:
        message = str(exc)
        if node:
            pool.discard(dep.pk, node)
    except Exception as exc:  # noqa: BLE001 - a step bug must fail the step, not hang it
        log.exception("step %s crashed", run.step)
        message = f"Internal error in step {run.step}: {type(exc).__name__}: {exc}"
    changes += [{"description": note, "path": "", "diff": ""} for note in ctx.notes]
    if status == RunStatus.OK and ctx.notes and not dep.dry_run:
        # Nothing changed, but the step checked things (e.g. the post-deployment test): say which, in words.
        passed = [note[1:].split(":")[0].strip() for note in ctx.notes if note.startswith("✓")]
        seen = [note for note in ctx.notes if not note.startswith("✓")]
        message = " ".join(part for part in (f"Passed: {', '.join(passed)}." if passed else "",
                                             f"Seen: {'; '.join(seen)}." if seen else "",
                                             "Nothing needed changing.") if part)
    if buf.cancelled:
        status, message = RunStatus.CANCELLED, "Cancelled by the admin; the remote command was interrupted."
    buf.info(f"{status.upper()}: {message}")  # the buffer masks secrets in every line
    return status, message, exit_code, changes


# -- the admin's levers -------------------------------------------------------------------------------

def _reopen(dep: Deployment) -> None:
    dep.status, dep.finished, dep.cancel_requested = Deployment.Status.RUNNING, None, False
    try:
        with transaction.atomic():
            _refuse_if_running(dep.cluster)
            dep.save(update_fields=["status", "finished", "cancel_requested"])
    except IntegrityError:
        _refuse_if_running(dep.cluster)
        raise


def retry(dep: Deployment, step_key: str) -> int:
    """Rerun one step on only the nodes where it failed (and what it held up)."""
    failed = list(dep.runs.filter(step=step_key, status__in=[RunStatus.FAILED, RunStatus.CANCELLED]))
    if not failed:
        raise DeploymentRefused(f"Step {step_key} has no failed or cancelled run to retry.")
    if dep.is_active:
        raise DeploymentRefused("The deployment is still running: retry once it has stopped.")
    with transaction.atomic():
        _reopen(dep)
        StepRun.objects.filter(pk__in=[r.pk for r in failed]).update(status=RunStatus.PENDING)
        _unskip_dependents(dep, {step_key})
        transaction.on_commit(lambda: _enqueue_advance(dep.pk))
    return len(failed)


BACKUP_GATE = "backup.manifest"


def depends_on(dep: Deployment, key: str) -> tuple[str, ...]:
    """The steps `key` waits for in `dep`: its own, and in a run that backs the cluster up first (an upgrade, a scale
    operation, a restore) the backup's last step, so a failed backup skips the operation before any node is touched."""
    own = tuple(get_step(key).depends_on)
    if dep.options.get("backup_first") and not key.startswith("backup.") and BACKUP_GATE not in own:
        return (*own, BACKUP_GATE)
    return own


def _unskip_dependents(dep: Deployment, keys: set[str]) -> None:
    steps = {r.step for r in dep.runs.all()}
    changed = True
    while changed:
        changed = False
        for key in steps - keys:
            if set(depends_on(dep, key)) & keys:
                keys.add(key)
                changed = True
    dep.runs.filter(step__in=keys, status=RunStatus.SKIPPED).update(status=RunStatus.PENDING, message="")


def resume(dep: Deployment) -> None:
    """Continue from the failed steps; steps already done run again, which for
    idempotent steps means a probe that finds nothing to change."""
    if dep.is_active:
        raise DeploymentRefused("The deployment is still running.")
    if dep.status == Deployment.Status.SUCCEEDED:
        raise DeploymentRefused("The deployment succeeded: start a new one instead.")
    with transaction.atomic():
        _reopen(dep)
        dep.runs.update(status=RunStatus.PENDING)
        transaction.on_commit(lambda: _enqueue_advance(dep.pk))


def cancel(dep: Deployment) -> None:
    if not dep.is_active:
        raise DeploymentRefused("The deployment is not running.")
    Deployment.objects.filter(pk=dep.pk).update(cancel_requested=True)
    advance(dep.pk)


def sweep() -> int:
    """Mark steps failed whose worker went silent; requeue queued ones whose
    message was lost (a broker restart). Returns how many runs it touched."""
    timeout = settings.STEP_HEARTBEAT_TIMEOUT
    cutoff = timezone.now() - timezone.timedelta(seconds=timeout)
    touched = 0
    for run in StepRun.objects.filter(status=RunStatus.RUNNING, heartbeat__lt=cutoff):
        n = StepRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING, heartbeat__lt=cutoff).update(
            status=RunStatus.FAILED, finished=timezone.now(),
            message=f"The worker running this step went silent for over {timeout:.0f} s (killed or lost). "
                    "Resume the deployment to run it again.",
        )
        if n:
            touched += 1
            advance(run.deployment_id)
    # A deployment whose runs have all finished but which is still marked running: its last advance
    # failed (the error is in that worker's log). Finishing it here frees the cluster for the next one.
    stuck = Deployment.objects.filter(status=Deployment.Status.RUNNING).exclude(
        runs__status__in=[s for s in RunStatus.values if s not in StepRun.FINISHED])
    for dep_id in stuck.values_list("pk", flat=True):
        advance(dep_id)
        touched += 1
    for run in StepRun.objects.filter(status=RunStatus.QUEUED, heartbeat__lt=cutoff):
        StepRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(heartbeat=timezone.now())
        _enqueue_run(run.pk)
        touched += 1
    return touched
