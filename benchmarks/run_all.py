"""Every benchmark of the console in one run, printed as one table (issue #10).

Run as root from the project directory, with PostgreSQL and Redis running (as for the tests):

    .venv/bin/python benchmarks/run_all.py [--hosts 1,4,16] [--repeat 3] [--quick] [--skip log,status]

1. Deployment of the app-server workload (benchmarks/workload.py) on light testbeds of N app servers:
   the console (its real steps, a real Celery worker with the production pool, real SSH, every log line
   stored, the deployment page polled once a second as the browser does), beside ansible-playbook
   (default settings; forks=N with pipelining) and a bare Fabric script (the floor). Median of --repeat
   runs, tools interleaved; every run starts from the same reset hosts and is checked afterwards.
2. Where the console's extra time goes, per step per node (benchmarks/worker_probe.py in the worker).
3. Live log latency and a 100,000-line log in Chromium (benchmarks/log_latency.py).
4. Status pages at 500 nodes with 30 days of samples, and a check cycle over 500 simulated nodes
   (benchmarks/status_page.py; --quick: 1 day of samples, 1 cycle).
5. Peak memory (RSS) of the web and worker processes during the largest deployment.
6. A backup of a 200 MB database and a 500 MB shared directory against `mysqldump | gzip` + `tar | gzip`,
   the worker's peak memory, and a drift check of 16 app servers against their dry run
   (benchmarks/backup_bench.py).
7. A rolling upgrade of 4 and 8 app servers (full testbeds) under steady load through the balancer: the console
   against a bare per-node script (the floor) and an Ansible serial: 1 playbook (benchmarks/rolling_bench.py;
   --quick: 4 app servers only).
8. One app server added to a serving cluster of 2, 4 and 8 under steady load, beside the full redeploy with the
   node added (benchmarks/scale_bench.py; --quick: 2 app servers only).
Benchmarks print; nothing here is a test.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import ansible_run, fabric_floor, workload  # noqa: E402
from benchmarks.harness import PG, Console  # noqa: E402
from nodes.testbed import Testbed  # noqa: E402

TOOLS = ("console", "fabric", "fabric_parallel", "ansible_default", "ansible_best")
LABELS = {"console": "console", "fabric": "Fabric floor", "fabric_parallel": "Fabric, parallel steps",
          "ansible_default": "Ansible default", "ansible_best": "Ansible forks=N+pipelining"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- memory -------------------------------------------------------------------------------------------------


class MemorySampler(threading.Thread):
    """RSS of every process in each group (a process group per role: gunicorn master + workers, the Celery
    worker), read from /proc every 100 ms; the group's members are re-listed every 2 s."""

    def __init__(self, groups: dict[str, int]):
        super().__init__(daemon=True)
        self.groups = groups
        self.peak_total = dict.fromkeys(groups, 0)
        self.peak_single = dict.fromkeys(groups, 0)
        self.members: dict[str, list[int]] = {}
        self.active = threading.Event()
        self.stop = threading.Event()
        self.page = os.sysconf("SC_PAGE_SIZE")

    def _list(self) -> None:
        members: dict[str, list[int]] = {role: [] for role in self.groups}
        by_pgid = {pgid: role for role, pgid in self.groups.items()}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    pgid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2])
                except (OSError, IndexError, ValueError):
                    continue
                if pgid in by_pgid:
                    members[by_pgid[pgid]].append(int(entry.name))
        self.members = members

    def run(self) -> None:
        listed = 0.0
        while not self.stop.wait(0.1):
            if not self.active.is_set():
                continue
            if time.monotonic() - listed > 2:
                self._list()
                listed = time.monotonic()
            for role, pids in self.members.items():
                sizes = []
                for pid in pids:
                    try:
                        sizes.append(int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * self.page)
                    except (OSError, IndexError, ValueError):
                        pass
                self.peak_total[role] = max(self.peak_total[role], sum(sizes))
                self.peak_single[role] = max(self.peak_single[role], max(sizes, default=0))


class PagePoller(threading.Thread):
    """The browser's side of a deployment page: the HTMX status fragment once a second while it runs."""

    def __init__(self, url: str, session: str):
        super().__init__(daemon=True)
        self.url, self.session = url, session
        self.stop = threading.Event()
        self.requests, self.errors = 0, 0

    def run(self) -> None:
        while not self.stop.is_set():
            req = urllib.request.Request(self.url, headers={"Cookie": f"sessionid={self.session}",
                                                            "HX-Request": "true"})
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - the local console
                    resp.read()
                self.requests += 1
            except OSError:
                self.errors += 1
            self.stop.wait(1.0)


# ---- the console's side -------------------------------------------------------------------------------------


def session_key() -> str:
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client()
    client.force_login(User.objects.get(username="bench"))
    return client.cookies["sessionid"].value


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def self_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def console_deploy(console: Console, cluster, session: str) -> tuple[float, int]:
    """Seconds from the start request to the deployment's finish (its own timestamp), and its id."""
    from django.utils import timezone

    from deployments import engine
    from deployments.models import Deployment

    started = timezone.now()
    dep = engine.start(cluster, steps=workload.CONSOLE_STEPS)
    poller = PagePoller(f"{console.url}/deployments/{dep.pk}/", session)
    poller.start()
    deadline = time.monotonic() + 600
    try:
        while Deployment.objects.filter(pk=dep.pk, status=Deployment.Status.RUNNING).exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{dep} did not finish in 600 s")
            time.sleep(0.05)
    finally:
        poller.stop.set()
        poller.join()
    dep.refresh_from_db()
    if dep.status != Deployment.Status.SUCCEEDED:
        failed = dep.runs.exclude(status__in=["ok", "changed"]).select_related("node")
        raise RuntimeError(f"{dep} {dep.status}: " + "; ".join(f"{r.step} {r.node}: {r.message}" for r in failed))
    if poller.requests == 0 or poller.errors:
        raise RuntimeError(f"deployment page poll: {poller.requests} answers, {poller.errors} errors")
    return (dep.finished - started).total_seconds(), dep.pk


def read_trace(path: Path) -> dict[int, dict]:
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if "run" in rec:
                out[rec["run"]] = rec
    return out


def overhead(dep_id: int, trace: dict[int, dict], floor_seconds: float) -> dict:
    """Per step run: the time from 'ready to run' to 'done', split into remote work and the rest."""
    from deployments.models import Deployment
    from deployments.steps import get_step

    dep = Deployment.objects.get(pk=dep_id)
    runs = list(dep.runs.all())
    finished_by_step: dict[str, list] = {}
    for r in runs:
        finished_by_step.setdefault(r.step, []).append(r.finished)
    rows, queries = [], {}
    for r in runs:
        deps = [t for d in get_step(r.step).depends_on for t in finished_by_step.get(d, [])]
        ready = max(deps) if deps else dep.created
        rec = trace.get(r.pk, {})
        remote = rec.get("remote", 0.0) + rec.get("sftp", 0.0)
        picked = rec.get("start", r.started.timestamp())  # when a worker thread took the task
        for kind, seconds in rec.get("queries", {}).items():
            queries[kind] = queries.get(kind, 0.0) + seconds
        rows.append({
            "dispatch": (r.started - ready).total_seconds(),
            "queue": picked - ready.timestamp(),
            "wall": rec.get("wall", (r.finished - r.started).total_seconds()),
            "remote": remote, "commands": rec.get("remote_n", 0) + rec.get("sftp_n", 0),
            "connect": rec.get("connect", 0.0),
            "db": rec.get("db", 0.0) + rec.get("db_connect", 0.0), "queries": rec.get("db_n", 0),
            "advance": rec.get("advance", 0.0),
        })
    n = len(rows)

    def mean(key):
        return sum(row[key] for row in rows) / n

    keys = ("dispatch", "queue", "wall", "remote", "commands", "connect", "db", "queries", "advance")
    result = {k: mean(k) for k in keys}
    result["other"] = result["wall"] - result["remote"] - result["connect"] - result["db"] - result["advance"]
    result["overhead"] = result["dispatch"] + result["wall"] - result["remote"]
    result["dispatch_max"] = max(row["dispatch"] for row in rows)
    result["runs"] = n
    result["queries_by_kind"] = {k: v / n for k, v in sorted(queries.items(), key=lambda kv: -kv[1])}
    result["deployment_minus_floor"] = (dep.finished - dep.created).total_seconds() - floor_seconds
    return result


# ---- one testbed size ---------------------------------------------------------------------------------------


def measure_size(n: int, repeat: int, console: Console, war: Path, war_sha: str, trace: Path, session: str,
                 sampler: MemorySampler | None, tools: tuple[str, ...] = TOOLS) -> dict:
    from nodes.inventory import load_inventory, register_artifact

    testbed = Testbed(f"jbd{os.getpid() % 0xFFFF:x}", app_servers=n, full=False, log=lambda m: None)
    atexit.register(testbed.stop_signal_safe)
    times: dict[str, list[float]] = {t: [] for t in tools}
    cpu: dict[str, list[float]] = {"console": [], "fabric": [], "fabric_parallel": []}
    deployments = []
    try:
        inventory = testbed.up(recreate=True)
        inv = {**inventory, "cluster": f"bench{n}", "artifacts": []}
        cluster = load_inventory(inv, replace=True)
        register_artifact(cluster, "jw_war", war)
        # One untimed run of the console and of the floor: imports, caches and the worker's threads warm up.
        for warm in ("console", "fabric"):
            workload.reset_hosts(testbed, inventory)
            console_deploy(console, cluster, session) if warm == "console" else fabric_floor.run(inventory, war,
                                                                                                 war_sha)
        for i in range(repeat):
            for tool in tools:
                workload.reset_hosts(testbed, inventory)
                time.sleep(0.3)  # let the reset's processes settle
                if tool == "console":
                    if sampler:
                        sampler.active.set()
                    cpu0 = sum(cpu_seconds(p.pid) for p in console.worker_procs)
                    seconds, dep_id = console_deploy(console, cluster, session)
                    cpu[tool].append(sum(cpu_seconds(p.pid) for p in console.worker_procs) - cpu0)
                    if sampler:
                        sampler.active.clear()
                    deployments.append(dep_id)
                elif tool.startswith("fabric"):
                    cpu0 = self_cpu()
                    seconds = fabric_floor.run(inventory, war, war_sha, parallel=tool == "fabric_parallel")
                    cpu[tool].append(self_cpu() - cpu0)
                else:
                    best = tool == "ansible_best"
                    seconds = ansible_run.run(inventory, war, war_sha, forks=n if best else None, pipelining=best)
                workload.check_hosts(testbed, inventory, war_sha)
                times[tool].append(seconds)
                log(f"{n} host(s), run {i + 1}/{repeat}: {LABELS[tool]} {seconds:.2f} s")
    finally:
        testbed.stop_signal_safe()
        atexit.unregister(testbed.stop_signal_safe)
    median = {t: statistics.median(v) for t, v in times.items()}
    spent = read_trace(trace)
    over = [overhead(d, spent, median.get("fabric_parallel", 0.0)) for d in deployments] or [None]
    mid = sorted(over, key=lambda o: o["deployment_minus_floor"])[len(over) // 2]
    return {"hosts": n, "times": times, "median": median, "overhead": mid,
            "cpu": {t: statistics.median(v) for t, v in cpu.items() if v}}


# ---- the other benchmarks, as subprocesses (each sets Django up its own way) --------------------------------


ENV_AT_START = dict(os.environ)  # the Console puts its scratch database's settings into os.environ


def run_script(script: str, args: list[str], env: dict | None = None) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = Path(fh.name)
    try:
        cmd = [sys.executable, str(ROOT / "benchmarks" / script), *args, "--json", str(out)]
        log(f"running {' '.join(cmd[1:])}")
        r = subprocess.run(cmd, cwd=ROOT, env={**ENV_AT_START, **(env or {})})
        if r.returncode != 0:
            return {"error": f"{script} exited with {r.returncode}"}
        return json.loads(out.read_text() or "{}")
    finally:
        out.unlink(missing_ok=True)


# ---- printing -----------------------------------------------------------------------------------------------


def machine() -> str:
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    load = os.getloadavg()
    distro = next((line.split("=", 1)[1].strip('"') for line in Path("/etc/os-release").read_text().splitlines()
                   if line.startswith("PRETTY_NAME=")), platform.system())
    return (f"{distro}, {os.cpu_count()} cores, {mem} GiB, Python {platform.python_version()}; "
            f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")


def print_report(sizes: list[dict], memory: dict | None, latency: dict | None, status: dict | None,
                 repeat: int) -> None:
    if sizes:
        print_deployments(sizes, repeat)
    print_others(memory, latency, status)


def print_deployments(sizes: list[dict], repeat: int) -> None:
    print(f"\n## Deployment of the app-server workload (median of {repeat}; seconds)\n")
    print("| app servers | console | Fabric floor | Fabric, parallel steps | Ansible default "
          "| Ansible forks=N + pipelining | console / floor | console / parallel Fabric | Ansible best / console |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for s in sizes:
        m = {t: s["median"].get(t, float("nan")) for t in TOOLS}  # nan: a tool left out (--tools)
        best = min(m["ansible_default"], m["ansible_best"])
        floor_ratio, ansible_ratio = m["console"] / m["fabric"], best / m["console"]
        print(f"| {s['hosts']} | {m['console']:.2f} | {m['fabric']:.2f} | {m['fabric_parallel']:.2f} | "
              f"{m['ansible_default']:.2f} | {m['ansible_best']:.2f} | "
              f"{floor_ratio:.2f}x {'(ok)' if floor_ratio <= 1.5 else '(target 1.5x)'} | "
              f"{m['console'] / m['fabric_parallel']:.2f}x | "
              f"{ansible_ratio:.1f}x {'(ok)' if ansible_ratio >= 5 else '(target 5x)'} |")
    print("\nAll runs: " + "; ".join(
        f"{s['hosts']} host(s): " + ", ".join(f"{LABELS[t]} " + "/".join(f"{v:.2f}" for v in s["times"][t])
                                             for t in s["times"]) for s in sizes))

    print("\n## Orchestration overhead per step per node (the deployment nearest the median; ms)\n")
    print("| app servers | step runs | ready → started (dispatch; of it, before a thread starts the task) "
          "| in the worker | remote commands (count) | "
          "SSH connect | database (queries) | advance | other (Python, threads) | overhead | "
          "deployment − parallel Fabric |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for s in (s for s in sizes if s["overhead"]):
        o = s["overhead"]
        print(f"| {s['hosts']} | {o['runs']} | {o['dispatch'] * 1000:.0f} (max {o['dispatch_max'] * 1000:.0f}; "
              f"{o['queue'] * 1000:.0f}) | "
              f"{o['wall'] * 1000:.0f} | {o['remote'] * 1000:.0f} ({o['commands']:.1f}) | {o['connect'] * 1000:.0f} | "
              f"{o['db'] * 1000:.0f} ({o['queries']:.0f}) | {o['advance'] * 1000:.0f} | {o['other'] * 1000:.0f} | "
              f"{o['overhead'] * 1000:.0f} | {o['deployment_minus_floor'] * 1000:.0f} |")

    print("\nCPU seconds per deployment (median): " + "; ".join(
        f"{s['hosts']} host(s): " + ", ".join(f"{LABELS[t]} {v:.2f} s" for t, v in s["cpu"].items()) for s in sizes)
        + " (console: the worker process; Fabric: the script's process; not counted: sshd and the hosts' "
          "commands, PostgreSQL, Redis)")
    for s in (s for s in sizes if s["overhead"]):
        top = list(s["overhead"]["queries_by_kind"].items())[:5]
        print(f"\nDatabase time per step run at {s['hosts']} host(s), by query: "
              + ", ".join(f"{kind} {sec * 1000:.0f} ms" for kind, sec in top))



def print_others(memory: dict | None, latency: dict | None, status: dict | None) -> None:
    if latency:
        print("\n## Live logs (Chromium, real gunicorn and worker)\n")
        if "error" in latency:
            print(latency["error"])
        else:
            print("| node → page median | p95 | 100,000-line log: page | tail painted after the click "
                  "| 500 older lines |")
            print("| ---: | ---: | ---: | ---: | ---: |")
            print(f"| {latency['median_ms']:.0f} ms | {latency['p95_ms']:.0f} ms | {latency['page_ms']:.0f} ms | "
                  f"{latency['paint_ms']:.0f} ms | {latency['older_ms']:.0f} ms |")
    if status:
        print("\n## Status pages and health checks\n")
        if "error" in status:
            print(status["error"])
        else:
            for key, value in status.items():
                print(f"- {key}: {value}")
    if memory:
        print("\n## Peak memory during the largest deployment (RSS)\n")
        print("| process | peak, all processes | largest single process |")
        print("| --- | ---: | ---: |")
        for role in memory["total"]:
            print(f"| {role} | {memory['total'][role] / 2**20:.0f} MiB | {memory['single'][role] / 2**20:.0f} MiB |")
    print(f"\nMachine: {machine()}. Date: {datetime.now():%Y-%m-%d %H:%M}. Ansible: {ansible_run.version()}.")


def deployments(args, sizes_wanted: list[int], repeat: int, tools: tuple[str, ...], work: Path, env: dict):
    """Part 1, 2 and 5: every size on one console (scratch database, gunicorn, Celery worker)."""
    war = work / "jw.war"
    war_sha = workload.make_war(war)
    trace = Path(env["BENCH_TRACE"])
    sizes = []
    with Console("deploy", worker_concurrency=args.concurrency, workers=args.workers,
                 worker_args=("--include", "benchmarks.worker_probe"), env=env) as console:
        session = session_key()
        sampler = MemorySampler({"web (gunicorn: master + 2 workers)": console.web.pid,
                                 **{f"worker {i + 1} (Celery, threads pool, {args.concurrency})": p.pid
                                    for i, p in enumerate(console.worker_procs)}})
        sampler.start()
        for n in sizes_wanted:
            log(f"deployment benchmark: {n} app server(s)")
            sizes.append(measure_size(n, repeat, console, war, war_sha, trace, session,
                                      sampler if n == max(sizes_wanted) else None, tools))
        sampler.stop.set()
        memory = {"total": sampler.peak_total, "single": sampler.peak_single}
    return sizes, memory


# ---- main ---------------------------------------------------------------------------------------------------


def _interrupt(signum, frame):
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C: the testbed, the console's processes and its
    # scratch database are removed by their finally blocks.
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="1,4,16", help="app-server counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per tool and size")
    parser.add_argument("--quick", action="store_true", help="1 run each, 1 day of samples, 1 check cycle")
    parser.add_argument("--skip", default="", help="parts to leave out: deploy,log,status,backup,roll,scale")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"deployment tools to time: {','.join(TOOLS)}")
    parser.add_argument("--concurrency", type=int, default=32, help="worker threads (production: 32)")
    parser.add_argument("--workers", type=int, default=1,
                        help="Celery worker processes, each with --concurrency threads (make run: one per core)")
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (the testbed's network namespaces)", file=sys.stderr)
        return 2
    sizes_wanted = [int(h) for h in args.hosts.split(",") if h.strip()]
    tools = tuple(t for t in TOOLS if t in args.tools.split(","))
    repeat = 1 if args.quick else args.repeat
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    (ROOT / "var").mkdir(exist_ok=True)

    sizes, memory = [], None
    if "deploy" not in skip:
        ansible_run.ensure_venv(log)
        work = Path(tempfile.mkdtemp(prefix="bench-", dir=ROOT / "var"))
        env = {"BENCH_TRACE": str(work / "trace.jsonl"), "MEDIA_ROOT": str(work / "media")}
        try:
            sizes, memory = deployments(args, sizes_wanted, repeat, tools, work, env)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    latency = None if "log" in skip else run_script("log_latency.py", [])
    status = None
    if "status" not in skip:
        status_args = ["--days", "1", "--cycles", "1"] if args.quick else []
        status = run_script("status_page.py", status_args, {"DATABASE_URL": ENV_AT_START.get("DATABASE_URL")
                                                             or f"{PG}/postgres"})
    # Backups against `mysqldump | gzip` + `tar | gzip`, drift against the dry run (its own testbeds; it prints
    # its own table with the targets).
    backup = None if "backup" in skip else run_script("backup_bench.py", ["--db-mb", "20", "--files-mb", "50"]
                                                      if args.quick else [])
    # The rolling upgrade against its floor and Ansible (full testbeds; it prints its own table with the targets).
    roll = None if "roll" in skip else run_script("rolling_bench.py", ["--app-servers", "4"] if args.quick else [])
    # Scale out against the full redeploy (full testbeds; it prints its own table with the target).
    scale = None if "scale" in skip else run_script("scale_bench.py", ["--app-servers", "2"] if args.quick else [])
    print_report(sizes, memory, latency, status, repeat)
    if args.json:
        Path(args.json).write_text(json.dumps({"sizes": sizes, "memory": memory, "latency": latency,
                                               "status": status, "backup": backup, "roll": roll, "scale": scale,
                                               "machine": machine()},
                                              indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
