"""Rolling upgrade of 4 and 8 app servers under steady load: the console against its floor and Ansible.

Run as root from the project directory, PostgreSQL and Redis up:

    .venv/bin/python benchmarks/rolling_bench.py [--app-servers 4,8] [--repeat 1] [--tools console,floor,ansible]

For each size: a full testbed (lb, N app servers with real Tomcat and session replication, db), deployed by a
scratch console with a real Celery worker. Then each tool upgrades every app server to a new stand-in jw.war
(its own build label, so the load sees which node serves which build) while tests.load.SteadyLoad keeps 6
sessions with cookies busy on the stand-in's session endpoint through the balancer (3 requests a second each):
- console: `deployments.rolling.run(cluster, "upgrade", war=...)`, the engine's roll (the `operate` command's);
- floor: benchmarks/rolling_floor.py, the same per-node sequence over one SSH connection per node and
  balancer-manager, nothing else;
- Ansible: benchmarks/ansible/rolling.yml (serial: 1, community.general.apache2_mod_proxy) in its own venv
  (var/bench-ansible-rolling, benchmarks/requirements-ansible-rolling.txt), pipelining on.
Every run must end with every node on the new build. Targets: 0 failed requests for the console (each tool's
failed requests are reported), the console <= 1.2x the floor, faster than Ansible. Benchmarks print; nothing
here is a test. The testbed of each size is torn down at the end (also on Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import ansible_run, rolling_floor  # noqa: E402
from benchmarks.harness import Console  # noqa: E402
from nodes.testbed import Testbed  # noqa: E402
from nodes.testbed.artifacts import STANDIN_START_DELAY  # noqa: E402
from nodes.testbed.standin import build_war  # noqa: E402
from tests.load import SteadyLoad  # noqa: E402

TOOLS = ("console", "floor", "ansible")
LABELS = {"console": "console", "floor": "floor (bare script)", "ansible": "Ansible serial: 1"}
VENV = ROOT / "var" / "bench-ansible-rolling"
REQUIREMENTS = ROOT / "benchmarks" / "requirements-ansible-rolling.txt"
PLAYBOOK = ROOT / "benchmarks" / "ansible" / "rolling.yml"
PHASES = "①②③④⑤⑥⑦"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def wait(dep, timeout=1800):
    deadline = time.monotonic() + timeout
    while dep.is_active and time.monotonic() < deadline:
        time.sleep(0.5)
        dep.refresh_from_db()
    return dep


def node_builds(tb: Testbed, inventory: dict) -> dict[str, str]:
    """Which build each app server serves, asked on the node itself."""
    out = {}
    for node in (n for n in inventory["nodes"] if "app_server" in n["roles"]):
        body = tb.host_exec(node["name"], f"curl -s -m 10 http://{node['address']}:8080/jw/testbed/session",
                            timeout=30).stdout
        found = re.search(r"build=(\S+)", body)
        out[node["name"]] = found.group(1) if found else body.strip()[:60]
    return out


def tomcat_startup(tb: Testbed, inventory: dict) -> float:
    """Seconds Tomcat itself took for its last start, summed over the app servers ("Server startup in [N]
    milliseconds" in catalina.out): the part of a roll no tool can shorten, and the noisiest on a shared machine."""
    total = 0.0
    for node in (n for n in inventory["nodes"] if "app_server" in n["roles"]):
        out = tb.host_exec(node["name"], f"grep -a 'Server startup in' {node['catalina_base']}/logs/catalina.out "
                                         "| tail -n 1", timeout=30).stdout
        found = re.search(r"Server startup in \[([\d,]+)\] milliseconds", out)
        total += int(found.group(1).replace(",", "")) / 1000 if found else float("nan")
    return total


def build_of(war: Path) -> str:
    import zipfile

    with zipfile.ZipFile(war) as z:
        return re.search(r"^build=(\S+)", z.read("WEB-INF/standin.properties").decode(), re.M).group(1)


# ---- the three tools ----------------------------------------------------------------------------------------


def console_upgrade(cluster, war: Path) -> tuple[float, dict[str, float], dict[str, float], float]:
    """(seconds from the call to the roll's finish, seconds per node, mean seconds per phase ①..⑦, seconds from
    the start commands to Joget's answers)."""
    from django.utils import timezone

    from deployments import rolling
    from deployments.models import LogLine

    t0 = timezone.now()
    dep = rolling.run(cluster, "upgrade", war=war, poll=0.1)
    if dep.status != "succeeded":
        failed = dep.runs.exclude(status__in=["ok", "changed"]).select_related("node")
        raise RuntimeError(f"console upgrade {dep.status}: " + "; ".join(f"{r.node}: {r.message}" for r in failed))
    runs = list(dep.runs.filter(step=rolling.ROLL_STEP).select_related("node").order_by("wave"))
    per_node = {r.node.name: (r.finished - r.started).total_seconds() for r in runs}
    phases: dict[str, list[float]] = {}
    starts = 0.0
    for r in runs:
        lines = list(LogLine.objects.filter(run=r).order_by("seq"))
        issued = next(line.time for line in lines if "catalina.sh start" in line.text)
        answered = next(line.time for line in lines if line.text.startswith("⑥"))
        starts += (answered - issued).total_seconds()
        marks = [(line.text[0], line.time) for line in lines if line.text[:1] in PHASES]
        marks.append(("end", r.finished))
        for (mark, at), (_, nxt) in zip(marks, marks[1:], strict=False):
            phases.setdefault(mark, []).append((nxt - at).total_seconds())
        if marks:
            phases.setdefault("start→①", []).append((marks[0][1] - r.started).total_seconds())
    return ((dep.finished - t0).total_seconds(), per_node,
            {k: statistics.mean(v) for k, v in sorted(phases.items())}, starts)


def ansible_upgrade(inventory: dict, war: Path) -> tuple[float, dict[str, float], dict]:
    hosts = ansible_run.hosts_doc(inventory)
    by_name = {n["name"]: n for n in inventory["nodes"]}
    for name, host in hosts["app_servers"]["hosts"].items():
        node = by_name[name]
        host.update(catalina_home=node["catalina_home"], catalina_base=node["catalina_base"],
                    http_port=node["http_port"])
    # apache2_mod_proxy runs here, with this venv's Python (BeautifulSoup).
    hosts["local"] = {"hosts": {"localhost": {"ansible_connection": "local",
                                              "ansible_python_interpreter": str(VENV / "bin" / "python")}}}
    lb = by_name[inventory["load_balancer"]["node"]]
    extra = {"war": str(war), "lb_vhost": f"{lb['address']}:{inventory['load_balancer']['http_port']}",
             "context": inventory.get("context_path", "/jw")}
    seconds, _ = ansible_run.run_playbook(PLAYBOOK, hosts, extra, forks=None, pipelining=True, venv=VENV)
    return seconds, {}, {}, float("nan")


def floor_upgrade(inventory: dict, war: Path) -> tuple[float, dict[str, float], dict, float]:
    seconds, per_node, starts = rolling_floor.run(inventory, war)
    return seconds, per_node, {}, starts


# ---- one size -----------------------------------------------------------------------------------------------


def measure(n: int, repeat: int, tools: tuple[str, ...], work: Path) -> dict:
    from deployments import engine
    from nodes.inventory import load_inventory

    tb = Testbed(f"rb{os.getpid() % 1000}", app_servers=n, full=True, log=lambda m: None)
    results: dict[str, list[dict]] = {t: [] for t in tools}
    try:
        t0 = time.monotonic()
        inventory = tb.up(recreate=True)
        cluster = load_inventory(dict(inventory), replace=True)
        log(f"{n} app servers: testbed up in {time.monotonic() - t0:.0f} s; deploying the whole plan")
        dep = wait(engine.start(cluster))
        if dep.status != "succeeded":
            raise RuntimeError(f"the first deployment {dep.status}")
        log(f"{n} app servers: deployed in {(dep.finished - dep.created).total_seconds():.0f} s")
        lb_name = inventory["load_balancer"]["node"]
        lb_address = next(nd["address"] for nd in inventory["nodes"] if nd["name"] == lb_name)
        k = 0
        for i in range(repeat):
            for tool in tools:
                k += 1
                war = build_war(work / f"jw-{n}-{k}" / "jw.war", inventory["joget_version"],
                                start_delay=STANDIN_START_DELAY, build=f"roll{n}n{k}")
                build = build_of(war)
                with SteadyLoad(lb_address, sessions=6, rate=3.0, max_requests=50000) as load:
                    load.wait_requests(18)
                    load1 = os.getloadavg()[0]
                    if tool == "console":
                        seconds, per_node, phases, starts = console_upgrade(cluster, war)
                    elif tool == "floor":
                        seconds, per_node, phases, starts = floor_upgrade(inventory, war)
                    else:
                        seconds, per_node, phases, starts = ansible_upgrade(inventory, war)
                    time.sleep(1.0)  # a few requests after the last node is back
                report = load.report
                builds = node_builds(tb, inventory)
                startup = tomcat_startup(tb, inventory)
                if set(builds.values()) != {build}:
                    raise RuntimeError(f"{tool}: not every node serves build {build}: {builds}")
                results[tool].append({"seconds": seconds, "per_node": per_node, "phases": phases, "tomcat": startup,
                                      "starts": starts,
                                      "requests": report.requests, "failed": report.failed, "lost": report.lost,
                                      "stale": report.stale, "errors": report.errors[:5], "load1": load1})
                log(f"{n} app servers, run {i + 1}/{repeat}: {LABELS[tool]} {seconds:.1f} s (Tomcat's own starts "
                    f"{startup:.1f} s; start commands to Joget's answers {starts:.1f} s); {report.summary()}; "
                    f"per node {json.dumps(per_node)}; phases {json.dumps(phases)}")
    finally:
        tb.down()
    return {"app_servers": n, "runs": results}


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs) if runs else float("nan")


def print_table(sizes: list[dict], repeat: int) -> None:
    print(f"\n## Rolling upgrade under steady load (median of {repeat}; seconds; targets: console 0 failed "
          "requests, <= 1.2x the floor, faster than Ansible)\n")
    print("| app servers | console | floor | Ansible serial: 1 | console / floor | Ansible / console "
          "| failed requests (console / floor / Ansible) | sessions lost | stale reads "
          "| per node beyond Tomcat's start (console / floor) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | --- |")
    for s in sizes:
        runs = s["runs"]
        m = {t: median(runs.get(t, []), "seconds") for t in TOOLS}
        ratio, vs_ansible = m["console"] / m["floor"], m["ansible"] / m["console"]

        def each(key, runs=runs):
            return " / ".join(str(sum(r[key] for r in runs.get(t, []))) if runs.get(t) else "-" for t in TOOLS)
        failed = each("failed")
        ok = sum(r["failed"] for r in runs.get("console", [])) == 0
        print(f"| {s['app_servers']} | {m['console']:.1f} | {m['floor']:.1f} | {m['ansible']:.1f} | "
              f"{ratio:.2f}x {'(ok)' if ratio <= 1.2 else '(target 1.2x)'} | "
              f"{vs_ansible:.2f}x {'(ok)' if vs_ansible > 1 else '(target > 1x)'} | "
              f"{failed} {'(ok)' if ok else '(target 0 for the console)'} | {each('lost')} | {each('stale')} | "
              + " / ".join(f"{statistics.median(r['seconds'] - r['starts'] for r in runs[t]) / s['app_servers']:.2f}"
                           if runs.get(t) else "-" for t in ("console", "floor")) + " |")
    for s in sizes:
        for tool in ("console", "floor"):
            for r in s["runs"].get(tool, [])[:1]:
                print(f"\n{s['app_servers']} app servers, {LABELS[tool]}, seconds per node: "
                      + ", ".join(f"{k} {v:.1f}" for k, v in r["per_node"].items()))
        for r in s["runs"].get("console", [])[:1]:
            print(f"{s['app_servers']} app servers, console, mean seconds per phase of a node: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in r["phases"].items()))
    print("\nAll runs: " + "; ".join(
        f"{s['app_servers']}: " + ", ".join(f"{LABELS[t]} " + "/".join(f"{r['seconds']:.1f}" for r in runs)
                                           for t, runs in s["runs"].items()) for s in sizes))
    load = [r["load1"] for s in sizes for runs in s["runs"].values() for r in runs]
    print(f"Machine: {os.cpu_count()} cores, load average (1 min) at the start of each run "
          f"{min(load, default=0):.1f}-{max(load, default=0):.1f}; {ansible_run.version(VENV)}; "
          f"{datetime.now():%Y-%m-%d %H:%M}.")


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds: the testbed and the console are removed


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app-servers", default="4,8", help="app-server counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=1, help="timed upgrades per tool and size")
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (the testbed's network namespaces)", file=sys.stderr)
        return 2
    tools = tuple(t for t in TOOLS if t in args.tools.split(","))
    if "ansible" in tools:
        ansible_run.ensure_venv(log, venv=VENV, requirements=REQUIREMENTS)
    (ROOT / "var").mkdir(exist_ok=True)
    sizes = []
    with tempfile.TemporaryDirectory(prefix="bench-roll-", dir=ROOT / "var") as work, \
            Console("roll", worker_concurrency=32):
        for n in (int(x) for x in args.app_servers.split(",") if x.strip()):
            sizes.append(measure(n, args.repeat, tools, Path(work)))
            if args.json:  # what is measured so far survives a later size's failure
                Path(args.json).write_text(json.dumps({"sizes": sizes}, indent=1, default=str))
    print_table(sizes, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
