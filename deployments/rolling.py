"""Rolling operations: the app servers restarted one at a time (or a batch at a time, never all), each taken out
of the load balancer first and put back only once it serves again, so the cluster keeps answering.

The procedure for one node is `roll_node`: disable the member (balancer-manager) → wait until its in-flight
requests finish and replication has settled → stop Tomcat gracefully → change what the operation changes →
start → wait until Joget answers on the node itself and the node has rejoined the replication group
(membership and session state transfer in catalina.out) → set the member back to its kept state → check
through the balancer. A failure raises StepFailed with the node still out of the balancer.

Each operation is a plan of the engine (a Deployment with `operation` and `options`): its rolling step's runs
go in waves (StepRun.wave), and the engine starts wave k+1 only when wave k has succeeded; a failed wave skips
the rest, and Resume/Retry go on from there. `start` is the one entry point (the `operate` command, the pages,
a benchmark); a deployment of a serving cluster rolls joget.running the same way (`plan_runs`). `run` starts
one and waits for its end (a benchmark's entry point).
"""

from __future__ import annotations

import logging
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import transaction

from nodes import versions, web
from nodes.models import Artifact, BalancerState, Cluster
from nodes.ssh import quote

from .models import Deployment, StepRun
from .steps import StepContext, StepFailed, tomcat_tools
from .steps import members as balancer_members

Operation = Deployment.Operation
log = logging.getLogger(__name__)
ROLL_STEP = "roll.node"
# What each operation runs (the engine's plan, steps named explicitly).
OPERATION_STEPS = {
    Operation.RESTART: [ROLL_STEP],
    Operation.UPGRADE: [ROLL_STEP],
    Operation.ROLLBACK: [ROLL_STEP],
    Operation.MEMBERS: ["members.apply"],
}
# The operations that back the cluster up first, in the same run, when the cluster's setting says so (their
# steps wait for backup.manifest: a failed backup stops them before any node is touched).
BACKED_UP_FIRST = {Operation.UPGRADE, Operation.SCALE_OUT, Operation.SCALE_IN}
ANONYMOUS = '"roleAnonymous"'
# catalina.out lines of a node that has rejoined: a peer seen, and DeltaManager's state transfer done (or
# skipped when no peer is up). Transfer happens while the context starts, so before Joget answers.
MEMBER_LINES = ("Replication member added", "memberAdded")
STATE_LINES = ("session state sen", "skipping state transfer", "No members active")
START_MARKER = "Server version name"
MARKER = ".jcc-rolled"  # in CATALINA_BASE: "<deployment id> <pid>" once a roll has restarted this node


class RollRefused(Exception):
    """The operation cannot start; the message says why. `field` names the option at fault (war, nodes, batch)
    when what was asked is wrong rather than the cluster's state."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field

    def refusal(self) -> Exception:
        """As the engine's refusal (what the pages, the command and the API catch); InvalidOption names the field."""
        from .refusals import DeploymentRefused, InvalidOption

        return InvalidOption(str(self), self.field) if self.field else DeploymentRefused(str(self))


# -- planning ---------------------------------------------------------------------------------------

def serving(cluster: Cluster) -> bool:
    """The cluster serves users through its balancer: a deployment of it has succeeded and the balancer's site
    has been set up, so a restart must not take it down. Until the balancer is configured there is nothing to
    take a node out of (a deployment of the database and app servers alone restarts them as it always did)."""
    deployed = Deployment.objects.filter(cluster=cluster, status=Deployment.Status.SUCCEEDED, dry_run=False,
                                         operation=Operation.DEPLOY)
    balanced = StepRun.objects.filter(deployment__cluster=cluster, deployment__dry_run=False,
                                      step="load_balancer.site", status__in=StepRun.DONE)
    return deployed.exists() and balanced.exists()


def can_roll(cluster: Cluster) -> bool:
    """Rolling needs a balancer to take nodes out of, and another app server to serve meanwhile."""
    lb = cluster.layer("load_balancer")
    return bool(lb and lb.node_id) and cluster.app_servers().count() >= 2


def batch_size(cluster: Cluster, options: dict) -> int:
    total = cluster.app_servers().count()
    batch = int(options.get("batch") or cluster.roll_batch or 1)
    if batch < 1:
        raise RollRefused("--batch must be 1 or more.", field="batch")
    if batch >= total:
        raise RollRefused(f"A batch of {batch} would restart all {total} app servers of {cluster.name} at once: "
                          f"a roll keeps at least one serving (--batch {max(1, total - 1)} at most).", field="batch")
    return batch


def _deploy_batch(cluster: Cluster) -> int:
    try:
        return batch_size(cluster, {})
    except RollRefused:
        return 1


def plan_runs(cluster: Cluster, plan: list, options: dict, *, dry_run: bool) -> list[tuple[int, object, object, int]]:
    """(position, step, node, wave) of every run: a rolling step's nodes in waves of the batch size, from 1."""
    if options.get("scale"):  # an app server added or removed: its own plan (deployments/scale.py)
        from . import scale

        return scale.plan_runs(cluster, plan, options)
    only = [n for n in options.get("nodes") or [] if n]
    runs = []
    for pos, step in enumerate(plan):
        targets = step.targets(cluster)
        if only and step.key == ROLL_STEP:
            unknown = sorted(set(only) - {n.name for n in targets})
            if unknown:
                raise RollRefused(f"Not app servers of {cluster.name}: {', '.join(unknown)}.", field="nodes")
            targets = [n for n in targets if n.name in only]
        rolls = not dry_run and step.rolls(cluster)
        # A deployment's own roll (joget.running) with a batch too big for the cluster goes one node at a time.
        batch = (batch_size(cluster, options) if step.key == ROLL_STEP else _deploy_batch(cluster)) if rolls else 1
        runs += [(pos, step, node, (1 + i // batch) if rolls else 0) for i, node in enumerate(targets)]
    return runs


def check_major(cluster: Cluster, path: Path) -> str:
    """The WAR's version; refuses a WAR of another major version than the cluster's (licenses are per major)."""
    try:
        version = versions.war_version(path)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, ValueError):
        # A damaged WAR (e.g. an upload cut short) fails anywhere in zipfile, not only as BadZipFile.
        raise RollRefused(f"{path.name} is not a WAR (not a readable zip file).", field="war") from None
    if not version:
        raise RollRefused(f"{path.name}: no Joget version found inside; an upgrade must stay on major version "
                          f"{cluster.major_version} (licenses are per major version).", field="war")
    major = version.split(".", 1)[0]
    if major != str(cluster.major_version):
        raise RollRefused(f"{path.name} is Joget {version}, the cluster runs {cluster.joget_version}: a rolling "
                          f"upgrade must keep major version {cluster.major_version}, since each node's license is "
                          f"for one major version (a new major needs new licenses: deploy it as a new cluster).",
                          field="war")
    return version


# -- the entry point --------------------------------------------------------------------------------

def start(cluster: Cluster, operation: str, *, user=None, war: Path | None = None, nodes: list[str] | None = None,
          batch: int | None = None, backup_first: bool | None = None) -> Deployment:
    """Start a rolling operation of `cluster` (restart, upgrade with `war`, rollback) and return its Deployment.
    An operation of BACKED_UP_FIRST backs the cluster up first (`backup_first`: None for the cluster's setting,
    False to skip it once); its id is the run's `options["backup_first"]`.

    The one function that runs a roll: the `operate` command and the pages call it, a benchmark may too.
    Raises engine.DeploymentRefused (RollRefused's reason) when it cannot start."""
    from . import backups

    options: dict = {"batch": batch or cluster.roll_batch or 1}
    if nodes:
        options["nodes"] = list(nodes)
    try:
        if operation == Operation.UPGRADE:
            if war is None:
                raise RollRefused("An upgrade needs the new jw.war (--war PATH).", field="war")
            options["version"] = check_major(cluster, Path(war))
        elif operation == Operation.ROLLBACK and not Artifact.objects.filter(
                cluster=cluster, kind=Artifact.Kind.PREVIOUS_JW_WAR).exists():
            raise RollRefused(f"Cluster {cluster.name} has no previous jw.war to roll back to (no upgrade yet).")
        if operation != Operation.MEMBERS and not can_roll(cluster):
            raise RollRefused(f"Cluster {cluster.name} cannot roll: it needs a load balancer and two app servers "
                              "or more (one keeps serving while the other restarts).")
        if operation != Operation.MEMBERS:
            batch_size(cluster, options)
    except RollRefused as exc:
        raise exc.refusal() from None
    # One transaction: the runs start (on commit) only once the cluster's jw.war is the one they install, and a
    # refused start (another run of the cluster) leaves the artifacts as they were, the uploaded file included.
    saved: list = []
    try:
        with transaction.atomic():
            if operation in (Operation.UPGRADE, Operation.ROLLBACK):
                options["war"] = _swap_artifacts(cluster, war, saved)
            dep, _backup = backups.start_operation(
                cluster, OPERATION_STEPS[operation], operation=operation, options=options, user=user,
                backup_first=backup_first if operation in BACKED_UP_FIRST else False,
                note=f"before the {Operation(operation).label}")
            return dep
    except BaseException:
        for field_file in saved:  # the rows rolled back; the file written to storage did not
            try:
                field_file.storage.delete(field_file.name)
            except Exception:  # noqa: BLE001 - the refusal is what the caller must see; the leak is logged
                log.exception("could not delete %s after a refused start", field_file.name)
        raise


def run(cluster: Cluster, operation: str, *, timeout: float = 3600, poll: float = 0.5, **options) -> Deployment:
    """Start a roll (as `start`, with its keyword options) and wait until it has finished: for a benchmark or a
    script. Returns the finished Deployment (its status, `recap()`, and the runs' timings)."""
    dep = start(cluster, operation, **options)
    deadline = time.monotonic() + timeout
    while dep.is_active and time.monotonic() < deadline:
        time.sleep(poll)
        dep.refresh_from_db()
    return dep


def _swap_artifacts(cluster: Cluster, war: Path | None, saved: list) -> str:
    """The cluster's jw.war becomes what the operation installs (its sha256 returned); the one it replaces is
    kept as the previous one (so a later deployment keeps the upgrade, and a rollback has something to go back to).
    The new WAR's stored file is appended to `saved` (the caller deletes it if the start fails); the file of the
    previous jw.war an upgrade drops is deleted once that commits."""
    from django.core.files import File

    kinds = Artifact.Kind
    with transaction.atomic():
        current = Artifact.objects.select_for_update().filter(cluster=cluster, kind=kinds.JW_WAR).first()
        previous = Artifact.objects.select_for_update().filter(cluster=cluster, kind=kinds.PREVIOUS_JW_WAR).first()
        if war is not None:  # upgrade: the new WAR in, the current one kept as the previous
            if previous:
                Artifact.delete_with_files([previous])
            if current:
                Artifact.objects.filter(pk=current.pk).update(kind=kinds.PREVIOUS_JW_WAR)
            with Path(war).open("rb") as fh:
                size, sha = Artifact.digest(fh)
                art = Artifact(cluster=cluster, kind=kinds.JW_WAR, original_name=Path(war).name, size=size, sha256=sha)
                art.file.save(Path(war).name, File(fh), save=False)
                saved.append(art.file)
                art.save()
        else:  # rollback: the two change places
            if current:
                Artifact.objects.filter(pk=current.pk).update(kind="swap")
            Artifact.objects.filter(pk=previous.pk).update(kind=kinds.JW_WAR)
            if current:
                Artifact.objects.filter(pk=current.pk).update(kind=kinds.PREVIOUS_JW_WAR)
        return Artifact.objects.get(cluster=cluster, kind=kinds.JW_WAR).sha256


# -- one node ---------------------------------------------------------------------------------------

def restarted_by(ctx: StepContext) -> bool:
    """This deployment's roll restarted the node already (and that Tomcat still runs): a Resume skips it."""
    pid = tomcat_tools.running_pid(ctx)
    mark = ctx.read_file(f"{tomcat_tools.base(ctx.node)}/{MARKER}")
    return pid is not None and mark is not None and mark.decode().split() == [str(ctx.deployment.pk), str(pid)]


def rejoined_command(node, timeout: int, peers: bool) -> str:
    """Wait (on the node, as the service user) for catalina.out since the last start to show the state transfer
    and, when other app servers run, a member added."""
    state = "|".join(STATE_LINES)
    member = "|".join(MEMBER_LINES)
    need_member = f"printf '%s\\n' \"$since\" | grep -qE {quote(member)} && " if peers else ""
    return tomcat_tools.read_catalina_out(node, (
        f"end=$(( $(date +%s) + {int(timeout)} )); while :; do "
        f"since=$(tac \"$1\" 2>/dev/null | sed '/{START_MARKER}/q' | tac); "
        f"if {need_member}printf '%s\\n' \"$since\" | grep -qE {quote(state)}; then "
        f"printf '%s\\n' \"$since\" | grep -E {quote(member + '|' + state)} | tail -n 4; exit 0; fi; "
        f"[ $(date +%s) -lt $end ] || exit 1; sleep {tomcat_tools.URL_POLL}; done"))


def check_through_balancer(ctx: StepContext, node) -> str:
    """Joget's probe page through the balancer, routed to `node` by a sticky cookie with its route."""
    lb = ctx.cluster.layer("load_balancer")
    lb_cookie = f"{lb.sticky_cookie}=rollcheck.{node.jvm_route}"
    path = f"{ctx.cluster.context_path}{web.ANON_PATH}"
    reply = web.get(lb.node.address, lb.http_port, path, timeout=10, headers={"Cookie": lb_cookie})
    if reply.status != 200 or ANONYMOUS not in reply.text:
        raise StepFailed(f"{path} through the balancer, routed to {node.name}: "
                         f"{reply.status or reply.error} {reply.text[:120]!r}")
    return f"{path} through the balancer to {node.name}: HTTP 200 in {reply.ms} ms"


def roll_node(ctx: StepContext, change: Callable[[], None] | None = None) -> None:
    """Take the step's node out of the balancer, restart it (applying `change` while Tomcat is stopped), and put
    it back once it serves again. Raises StepFailed with the node still out of the balancer."""
    node = ctx.node
    manager = balancer_members.Manager(ctx.cluster, ctx)
    take_out(ctx, node, manager)
    if change is not None:
        ctx.log("④ change what the operation changes")
        change()
    start_and_rejoin(ctx, node)
    pid = tomcat_tools.running_pid(ctx)
    ctx.write_file(f"{tomcat_tools.base(node)}/{MARKER}", f"{ctx.deployment.pk} {pid}\n".encode(), mode="0644",
                   owner=tomcat_tools.OWNER, backup=False)
    put_back(ctx, node, manager)


def take_out(ctx: StepContext, node, manager: balancer_members.Manager) -> None:
    """Disable `node` in the balancer (another one must serve), wait for its requests and for replication to
    settle, and stop its Tomcat."""
    found = manager.members()
    others = [m for r, m in found.items() if r != node.jvm_route and m.serving]
    if not others:
        seen = ", ".join(f"{r}: {m.status}" for r, m in found.items())
        raise StepFailed(f"No other app server is serving through the balancer ({seen}): "
                         f"stopping {node.name} now would stop the cluster. Bring another node back first.")
    ctx.log(f"① take {node.name} out of the balancer (disable {node.jvm_route}); "
            f"{', '.join(m.route for m in others)} serve meanwhile")
    manager.set_state(node, BalancerState.DISABLED)
    waited = manager.wait_idle(node, timeout=settings.ROLL_DRAIN_TIMEOUT, log=ctx.log)
    settle = settings.ROLL_SETTLE_SECONDS
    ctx.log(f"② no request in flight on {node.name} (waited {waited} s); {settle:g} s for replication to settle")
    time.sleep(settle)
    ctx.log(f"③ stop Tomcat on {node.name}")
    tomcat_tools.stop(ctx, node)


def start_and_rejoin(ctx: StepContext, node, *, rejoin: bool = True) -> None:
    """Start `node`'s Tomcat; wait until Joget answers on the node itself and (`rejoin`) the node has rejoined
    replication (state transfer happens while the context starts, before Joget answers)."""
    ctx.log(f"⑤ start Tomcat on {node.name}")
    tomcat_tools.start(ctx, node, wait=False)  # Joget's page below answers only once HTTP does
    path = f"{ctx.cluster.context_path}{web.ANON_PATH}"
    body = tomcat_tools.wait_for_url(ctx, node, path, contains=ANONYMOUS, timeout=settings.ROLL_APP_TIMEOUT)
    ctx.log(f"⑥ Joget answers on {node.name} itself: {body[:80]}")
    if not rejoin:
        return
    peers = ctx.cluster.app_servers().count() > 1
    timeout = int(settings.ROLL_REJOIN_TIMEOUT)
    conn = ctx.connect(node)
    r = ctx.run(rejoined_command(node, timeout, peers), quiet=True, timeout=timeout + 60, conn=conn)
    if not r.ok:
        ctx.run(tomcat_tools.read_catalina_out(node, 'tail -n 20 -- "$1"'), timeout=30, conn=conn)
        raise StepFailed(f"{node.name} did not rejoin the replication group within {timeout} s (no member added and "
                         f"session state transfer in catalina.out since its start); it stays out of the balancer.")
    for line in r.stdout.strip().splitlines():
        ctx.log(f"   {line[:200]}")


def put_back(ctx: StepContext, node, manager: balancer_members.Manager, *, note: bool = True) -> None:
    """Set `node` back to its kept member state, and check it through the balancer when it is enabled (a note of
    the step's, or with `note=False` a log line)."""
    state = node.balancer_state
    ctx.log(f"⑦ put {node.name} back in the balancer ({state})")
    manager.set_state(node, state)
    if state == BalancerState.ENABLED:
        seen = check_through_balancer(ctx, node)
        if note:
            ctx.note(f"✓ {node.name}: {seen}")
        else:  # inside another step's checks (the post-deployment test), whose ✓ lines are its own
            ctx.log(f"{node.name} back: {seen}")
