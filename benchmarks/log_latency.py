"""Live log latency, node to page, measured with a real browser.

A step on a light testbed host prints `tick N <epoch seconds>` every 50 ms (the
hosts share this machine's clock). Chromium opens the deployment page, opens
the step's log, and a MutationObserver notes Date.now() as each line appears.
Latency = time shown on the page - time printed on the node.

Then a finished log of 100,000 lines: time from clicking "Log" to the tail
painted.

Run as root from the project folder: .venv/bin/python benchmarks/log_latency.py
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import Console, chromium, login  # noqa: E402
from nodes.testbed import Testbed  # noqa: E402

OBSERVER = """
window.__seen = [];
new MutationObserver((records) => {
  const now = Date.now();
  for (const r of records) for (const n of r.addedNodes) {
    if (n.classList && n.classList.contains('ln')) window.__seen.push([n.textContent, now]);
  }
}).observe(document.body, {childList: true, subtree: true});
"""


def percentile(values, p):
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


def main():
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the figures to this file (benchmarks/run_all.py)")
    args = parser.parse_args()
    figures = {}

    tb = Testbed("jbl", app_servers=1)
    try:
        inventory = tb.up(recreate=True)
        with Console("latency") as console:
            from django.utils import timezone

            from deployments import engine
            from deployments.models import Deployment, LogLine, StepRun
            from nodes.inventory import load_inventory

            inventory["artifacts"] = []
            cluster = load_inventory(inventory, replace=True)
            with sync_playwright() as p:
                browser = chromium(p)
                page = browser.new_page()
                login(page, console.url)

                dep = engine.start(cluster, steps=["bench.ticks"])
                page.goto(f"{console.url}/deployments/{dep.pk}/")
                page.evaluate(OBSERVER)
                run = dep.runs.get()
                page.click(f"[data-target='log-{run.pk}']")
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    dep.refresh_from_db()
                    if not dep.is_active:
                        break
                    time.sleep(0.2)
                page.wait_for_timeout(800)
                seen = page.evaluate("window.__seen")
                latencies = []
                for text, shown_ms in seen:
                    parts = text.split()
                    if len(parts) == 3 and parts[0] == "tick":
                        latencies.append(shown_ms - float(parts[2]) * 1000)
                # Lines printed before the page opened arrive in the first (tail) load: not live.
                live = latencies[5:]
                figures.update(lines=len(latencies), median_ms=statistics.median(live), p95_ms=percentile(live, 95),
                               max_ms=max(live))
                print(f"live log lines observed: {len(latencies)} (of 120)")
                print(f"node -> page latency: median {statistics.median(live):.0f} ms, "
                      f"p95 {percentile(live, 95):.0f} ms, max {max(live):.0f} ms")

                big = Deployment.objects.create(cluster=cluster, status="succeeded")
                big_run = StepRun.objects.create(deployment=big, step="bench.ticks", position=0, status="ok",
                                                 node=cluster.app_servers().first(), last_seq=100_000)
                now = timezone.now()
                LogLine.objects.bulk_create(
                    (LogLine(run=big_run, seq=i, stream="stdout", text=f"line {i} " + "x" * 60, time=now)
                     for i in range(1, 100_001)), batch_size=10_000)
                t0 = time.monotonic()
                page.goto(f"{console.url}/deployments/{big.pk}/")
                page_ms = (time.monotonic() - t0) * 1000
                t0 = time.monotonic()
                page.click(f"[data-target='log-{big_run.pk}']")
                page.wait_for_selector(f"#log-{big_run.pk} .ln[data-seq='100000']")
                paint_ms = (time.monotonic() - t0) * 1000
                t0 = time.monotonic()
                page.click(f"#log-{big_run.pk} .older")
                page.wait_for_selector(f"#log-{big_run.pk} .ln[data-seq='99001']")
                older_ms = (time.monotonic() - t0) * 1000
                figures.update(page_ms=page_ms, paint_ms=paint_ms, older_ms=older_ms)
                print(f"100,000-line log: page {page_ms:.0f} ms, tail painted {paint_ms:.0f} ms after the click, "
                      f"500 older lines {older_ms:.0f} ms")
                browser.close()
    finally:
        tb.down()
    if args.json:
        Path(args.json).write_text(json.dumps(figures))


if __name__ == "__main__":
    main()
