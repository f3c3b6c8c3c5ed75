"""Bring-up and tear-down times of the testbed (nodes/testbed), without Django.

Run as root from the project directory:  .venv/bin/python benchmarks/testbed_times.py [--repeat N]

Measures light testbeds of 4 and 16 hosts (lb, app servers, db), and the full tier (4 hosts
plus the package check; the services themselves are started by the console, not here). "up"
ends when every host's sshd answers; "ssh" is one fresh paramiko login + `hostname` on each host.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nodes.testbed import Testbed, TestbedError, describe_missing, missing_packages  # noqa: E402
from nodes.testbed.remote import connect, run  # noqa: E402

CASES = (("light, 4 hosts", 4, False), ("light, 16 hosts", 16, False), ("full, 4 hosts", 4, True))


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _ssh_all(inventory: dict) -> float:
    start = time.perf_counter()
    for node in inventory["nodes"]:
        client = connect(inventory, node["name"])
        try:
            assert run(client, "hostname")[1].strip() == node["name"]
        finally:
            client.close()
    return time.perf_counter() - start


def measure(hosts: int, full: bool, repeat: int) -> dict[str, list[float]]:
    # lb + db + (hosts - 2) app servers; a prefix of our own so a real testbed is never touched.
    testbed = Testbed(f"jb{os.getpid() % 0xFFFFFF:x}", app_servers=hosts - 2, full=full, log=lambda m: None)
    times: dict[str, list[float]] = {"up": [], "ssh": [], "down": []}
    try:
        for _ in range(repeat):
            up, inventory = _timed(lambda: testbed.up(recreate=True))
            times["up"].append(up)
            times["ssh"].append(_ssh_all(inventory))
            times["down"].append(_timed(testbed.down)[0])
    finally:
        testbed.down()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (the median is printed)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    check, missing = _timed(missing_packages)
    print(f"package check (full tier): {check * 1000:.1f} ms" + (f"; {describe_missing(missing)}" if missing else ""))
    print(f"{'case':<18}{'up':>10}{'ssh all':>10}{'down':>10}   (median of {args.repeat}, seconds)")
    for label, hosts, full in CASES:
        if full and missing:
            print(f"{label:<18}  skipped: packages missing")
            continue
        try:
            t = measure(hosts, full, args.repeat)
        except TestbedError as exc:
            print(f"{label:<18}  failed: {exc}", file=sys.stderr)
            return 1
        print(f"{label:<18}" + "".join(f"{statistics.median(t[k]):>10.3f}" for k in ("up", "ssh", "down")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
