"""Adding one app server to a serving cluster of 2, 4 and 8 under steady load, beside the full redeploy.

Run as root from the project directory, PostgreSQL and Redis up:

    .venv/bin/python benchmarks/scale_bench.py [--app-servers 2,4,8] [--json F]

For each size: a full testbed (lb, N app servers with real Tomcat and session replication, db, and two spare
hosts made like app servers but out of the cluster), deployed by a scratch console with a real Celery worker.
While tests.load.SteadyLoad keeps 6 sessions with cookies busy on the stand-in's session endpoint through the
balancer (3 requests a second each):
1. the console's scale out (`deployments.scale.start(cluster, "scale_out", ...)`, what `operate CLUSTER
   add-node` and the cluster page run) brings spare1 in: timed, with the failed requests and lost sessions;
2. the console's scale in takes it out again (reported, not compared);
3. the way without scale out: spare2 added to the inventory and the whole plan deployed again (on a serving
   cluster the deployment rolls the restarts it needs, one app server at a time): timed the same way.
Each spare is fresh when its path starts, so neither path finds the other's work done. Target: 0 failed
requests for the scale out. Benchmarks print; nothing here is a test. Each testbed is torn down at the end
(also on Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.harness import Console  # noqa: E402
from nodes.testbed import Testbed  # noqa: E402
from tests.load import SteadyLoad  # noqa: E402


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def wait(dep, timeout=3600):
    deadline = time.monotonic() + timeout
    while dep.is_active and time.monotonic() < deadline:
        time.sleep(0.5)
        dep.refresh_from_db()
    if dep.status != "succeeded":
        failed = dep.runs.exclude(status__in=["ok", "changed", "skipped"]).select_related("node")
        raise RuntimeError(f"run {dep.pk} {dep.status}: " + "; ".join(f"{r.step} {r.node}: {r.message}"
                                                                      for r in failed))
    return dep


def under_load(lb_address: str, action) -> dict:
    """Run `action()` (it starts a run and returns its Deployment, finished) with the load going; its seconds from
    the call to the run's end, and what the load saw."""
    with SteadyLoad(lb_address, sessions=6, rate=3.0, max_requests=100000) as load:
        load.wait_requests(18)
        load1 = os.getloadavg()[0]
        t0 = time.monotonic()
        wait(action())
        seconds = time.monotonic() - t0
        time.sleep(1.0)  # a few requests after the run's end
    r = load.report
    return {"seconds": seconds, "requests": r.requests, "failed": r.failed, "lost": r.lost, "stale": r.stale,
            "errors": r.errors[:5], "load1": load1}


def spare_values(spare: dict, name: str, route: str) -> dict:
    return {"name": name, "address": spare["address"], "ssh_port": spare["ssh_port"], "ssh_user": spare["ssh_user"],
            "host_key": spare["host_key"], "jvm_route": route}


def measure(n: int) -> dict:
    from deployments import engine, scale
    from deployments.models import Deployment
    from nodes.inventory import load_inventory

    op = Deployment.Operation
    tb = Testbed(f"sb{os.getpid() % 1000}", app_servers=n, full=True, spares=2, log=lambda m: None)
    try:
        t0 = time.monotonic()
        inventory = tb.up(recreate=True)
        cluster = load_inventory(dict(inventory), replace=True)
        log(f"{n} app servers: testbed up in {time.monotonic() - t0:.0f} s; deploying the whole plan")
        dep = wait(engine.start(cluster))
        log(f"{n} app servers: deployed in {(dep.finished - dep.created).total_seconds():.0f} s")
        lb = next(nd["address"] for nd in inventory["nodes"] if nd["name"] == inventory["load_balancer"]["node"])
        spare1, spare2 = inventory["spare_nodes"][:2]
        new = f"app{n + 1}"
        out = {"app_servers": n}
        # No backup first (the cluster's setting, on by default): the redeploy takes none, and the backup's own
        # cost is benchmarks/backup_bench.py's.
        out["scale_out"] = under_load(lb, lambda: scale.start(
            cluster, op.SCALE_OUT, backup_first=False, **spare_values(spare1, new, f"node{n + 1:02d}")))
        log(f"{n} app servers: scale out {json.dumps(out['scale_out'])}")
        out["scale_in"] = under_load(lb, lambda: scale.start(cluster, op.SCALE_IN, node=new, backup_first=False))
        log(f"{n} app servers: scale in {json.dumps(out['scale_in'])}")

        def redeploy():
            scale.candidate(cluster, **spare_values(spare2, new, f"node{n + 2:02d}")).save()
            return engine.start(cluster)
        out["redeploy"] = under_load(lb, redeploy)
        log(f"{n} app servers: full redeploy {json.dumps(out['redeploy'])}")
        return out
    finally:
        tb.down()


def print_table(sizes: list[dict]) -> None:
    print("\n## Adding one app server under steady load (seconds; target: 0 failed requests for the scale out)\n")
    print("| app servers before | scale out (add-node) | full redeploy with the node added | redeploy / scale out "
          "| failed requests (scale out / redeploy) | sessions lost (scale out / redeploy) | scale in |")
    print("| ---: | ---: | ---: | ---: | --- | --- | ---: |")
    for s in sizes:
        a, r, i = s["scale_out"], s["redeploy"], s["scale_in"]
        print(f"| {s['app_servers']} | {a['seconds']:.1f} | {r['seconds']:.1f} | {r['seconds'] / a['seconds']:.2f}x | "
              f"{a['failed']} / {r['failed']}{' (ok)' if a['failed'] == 0 else ' (target 0)'} | "
              f"{a['lost']} / {r['lost']} | {i['seconds']:.1f} ({i['failed']} failed) |")
    load = [s[k]["load1"] for s in sizes for k in ("scale_out", "redeploy", "scale_in")]
    print(f"\nMachine: {os.cpu_count()} cores, load average (1 min) at the start of each run "
          f"{min(load, default=0):.1f}-{max(load, default=0):.1f}; {datetime.now():%Y-%m-%d %H:%M}.")


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds: the testbed and the console are removed


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app-servers", default="2,4,8", help="app-server counts before the addition")
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (the testbed's network namespaces)", file=sys.stderr)
        return 2
    sizes = []
    with Console("scale", worker_concurrency=32):
        for n in (int(x) for x in args.app_servers.split(",") if x.strip()):
            sizes.append(measure(n))
            if args.json:  # what is measured so far survives a later size's failure
                Path(args.json).write_text(json.dumps({"sizes": sizes}, indent=1, default=str))
    print_table(sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
