"""The live log of a deployment on a terminal, and its recap line: shared by the `deploy` and `operate` commands."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from .models import Deployment, LogLine, StepRun


def follow(dep: Deployment, write: Callable[[str], None]) -> None:
    """Print each log line as `[step node] text` and each run's outcome as it finishes, until the deployment ends."""
    last_id, seen = 0, {}
    while True:
        dep.refresh_from_db(fields=["status"])
        lines = (LogLine.objects.filter(run__deployment=dep, id__gt=last_id)
                 .select_related("run__node").order_by("id")[:2000])
        for line in lines:
            node = line.run.node.name if line.run.node_id else "cluster"
            write(f"[{line.run.step} {node}] {line.text}")
            last_id = line.id
        for run in StepRun.objects.filter(deployment=dep).select_related("node"):
            if seen.get(run.pk) != run.status and run.is_finished:
                node = run.node.name if run.node_id else "cluster"
                write(f"== {run.step} on {node}: {run.status.upper()} {run.message}")
            seen[run.pk] = run.status
        if not dep.is_active and not lines:
            return
        time.sleep(0.2)


def follow_to_end(dep: Deployment, stdout, stderr) -> None:
    """`--follow`: the live log, then `changed=N ok=N failed=N skipped=N`; exits 1 unless it succeeded (130 on ^C)."""
    try:
        follow(dep, stdout.write)
    except KeyboardInterrupt:
        stderr.write(f"Stopped following; the {dep.get_operation_display()} goes on (cancel it in the console).")
        sys.exit(130)
    dep.refresh_from_db()
    stdout.write(" ".join(f"{k}={v}" for k, v in dep.recap().items()))
    if dep.status != Deployment.Status.SUCCEEDED:
        sys.exit(1)
