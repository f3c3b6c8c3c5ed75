"""How a deployment's runs and a checklist run read on a page: shared by the deployment and checklist pages and
the wizard's steps that show them."""

from . import checklist
from .models import Deployment, StepRun
from .steps import get_step

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


def run_groups(dep: Deployment) -> list[dict]:
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


def checklist_context(cluster, run) -> dict:
    """The checklist's items with their results per node, and the run's summary."""
    items = []
    if run:
        results = list(run.results.select_related("node"))
        for item in checklist.ITEMS:
            rows = [r for r in results if r.item == item.key]
            if rows:
                statuses = {r.status for r in rows}
                items.append({"key": item.key, "title": item.title, "results": rows,
                              "ok": statuses == {"pass"}, "failed": "fail" in statuses,
                              "planned": "planned" in statuses and statuses <= {"pass", "planned"}})
    return {"cluster": cluster, "check_run": run, "items": items, "summary": checklist.summary(run)}
