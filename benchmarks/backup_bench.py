"""Backups and drift against their floors (issue: backups, item 7). Run as root, PostgreSQL and Redis up:

    .venv/bin/python benchmarks/backup_bench.py [--db-mb 200] [--files-mb 500] [--app-servers 16] [--json F]

1. A full testbed (lb, 2 app servers, db) deployed by a scratch console with a real worker; the shared
   database filled to --db-mb MB and the shared directory to --files-mb MB (half random, half base64 text:
   neither all-compressible nor all-incompressible). The floor: `mysqldump ... | gzip` and `tar | gzip`, one
   SSH connection each, in parallel, into local files. Then the console's backup (the engine run, stored
   through Django storage). Target: at most 1.3x the floor; the worker's peak RSS during the backup at most
   200 MiB (its VmHWM is reset just before).
2. A light testbed of --app-servers app servers: the plan's dry run, then a drift check (the same probes and
   the comparison). Target: the drift check no slower than the dry run. The drift check needs a succeeded
   deployment to compare with: the benchmark records one (the light hosts cannot run the real plan).
Benchmarks print; nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.harness import Console  # noqa: E402
from nodes.testbed import Testbed  # noqa: E402
from nodes.testbed.remote import connect  # noqa: E402

WFLOW = "/opt/joget/wflow"
DUMP = "mysqldump --single-transaction --quick --routines --triggers --hex-blob"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def wait(dep, timeout=1800):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dep.refresh_from_db()
        if not dep.is_active:
            return dep
        time.sleep(0.2)
    raise RuntimeError(f"{dep} did not finish")


def fill(tb: Testbed, inv: dict, db_mb: int, files_mb: int) -> None:
    db = inv["shared_database"]["name"]
    rows = db_mb * 1024 // 4  # 4 KB rows
    log(f"filling the database with {db_mb} MB ({rows} rows)")
    tb.host_exec("db", f"{{ echo 'CREATE TABLE IF NOT EXISTS bench_rows (id INT AUTO_INCREMENT PRIMARY KEY, "
                       f"v TEXT) ENGINE=InnoDB; BEGIN;'; base64 -w 4000 /dev/urandom | head -n {rows} | "
                       f"sed \"s/.*/INSERT INTO bench_rows (v) VALUES ('&');/\"; echo 'COMMIT;'; }} | mariadb {db}",
                 check=True, timeout=1800)
    log(f"filling the shared directory with {files_mb} MB")
    half = files_mb // 2
    tb.host_exec("app1", f"runuser -u tomcat -- sh -c 'mkdir -p {WFLOW}/bench && cd {WFLOW}/bench && "
                         f"for i in $(seq 1 {half // 10}); do head -c 10M /dev/urandom > r$i.bin; "
                         f"base64 /dev/urandom | head -c 10M > t$i.txt; done'", check=True, timeout=1800)


def floor(inv: dict) -> float:
    """The two streams over one SSH connection each, in parallel, into local files."""
    out = ROOT / "var" / "bench-backup-floor"
    out.mkdir(exist_ok=True)
    db = inv["shared_database"]["name"]
    jobs = [("db", f"{DUMP} {db} | gzip -c", out / "db.sql.gz"),
            ("app1", f"runuser -u tomcat -- tar -C {WFLOW} -cf - . | gzip -c", out / "files.tar.gz")]

    def one(host, command, path):
        client = connect(inv, host)
        try:
            chan = client.get_transport().open_session()
            chan.exec_command(command)
            with open(path, "wb") as fh:
                for chunk in iter(lambda: chan.recv(256 * 1024), b""):
                    fh.write(chunk)
            chan.recv_exit_status()
        finally:
            client.close()

    start = time.monotonic()
    threads = [threading.Thread(target=one, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - start
    sizes = {p.name: p.stat().st_size for _, _, p in jobs}
    log(f"floor: {took:.1f} s, {sizes}")
    for _, _, p in jobs:
        p.unlink()
    return took


def vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def backup_part(db_mb: int, files_mb: int) -> dict:
    tb = Testbed(f"bb{__import__('os').getpid() % 1000}", app_servers=2, full=True)
    with Console("backup", worker_concurrency=32) as console:
        try:
            inv = tb.up(recreate=True)
            from deployments import backups, engine
            from nodes.inventory import load_inventory

            cluster = load_inventory(inv, replace=True)
            log("deploying the whole plan")
            dep = wait(engine.start(cluster))
            if dep.status != "succeeded":
                raise RuntimeError(f"deployment {dep.status}")
            fill(tb, inv, db_mb, files_mb)
            floor_s = min(floor(inv) for _ in range(2))
            worker = console.worker_procs[0].pid
            Path(f"/proc/{worker}/clear_refs").write_text("5")  # resets VmHWM: the peak from here on
            start = time.monotonic()
            backup = backups.start_backup(cluster)
            dep = wait(backup.deployment)
            took = time.monotonic() - start
            backup.refresh_from_db()
            peak = vm_hwm_mib(worker)
            log(f"console backup: {dep.status} in {took:.1f} s, {backup.total_size} bytes, worker peak {peak:.0f} MiB")
            backups.delete_backup(backup)
            return {"floor_s": floor_s, "backup_s": took, "ratio": took / floor_s, "worker_peak_mib": peak,
                    "status": dep.status, "stored_bytes": backup.total_size}
        finally:
            tb.down()


def drift_part(n: int) -> dict:
    tb = Testbed(f"bd{__import__('os').getpid() % 1000}", app_servers=n, full=False)
    with Console("drift", worker_concurrency=32) as console:  # noqa: F841 - the worker runs the probes
        try:
            inv = tb.up(recreate=True)
            inv["artifacts"] = [a for a in inv.get("artifacts", []) if a["kind"] != "schema_sql"]
            from deployments import drift, engine
            from deployments.models import Deployment
            from nodes.inventory import load_inventory

            cluster = load_inventory(inv, replace=True)
            Deployment.objects.create(cluster=cluster, status=Deployment.Status.SUCCEEDED)
            times = {"dry_run": [], "drift": []}
            for _ in range(2):
                start = time.monotonic()
                wait(engine.start(cluster, dry_run=True))
                times["dry_run"].append(time.monotonic() - start)
                start = time.monotonic()
                check = drift.start_check(cluster)
                wait(check.deployment)
                drift.conclude(check)
                times["drift"].append(time.monotonic() - start)
            best = {k: min(v) for k, v in times.items()}
            log(f"{n} app servers: dry run {best['dry_run']:.1f} s, drift check {best['drift']:.1f} s")
            return {"app_servers": n, **best, "ratio": best["drift"] / best["dry_run"]}
        finally:
            tb.down()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-mb", type=int, default=200)
    parser.add_argument("--files-mb", type=int, default=500)
    parser.add_argument("--app-servers", type=int, default=16)
    parser.add_argument("--skip", default="", help="backup,drift")
    parser.add_argument("--json")
    args = parser.parse_args()
    out = {}
    if "backup" not in args.skip:
        out["backup"] = backup_part(args.db_mb, args.files_mb)
    if "drift" not in args.skip:
        if "backup" in out:
            # Django is set up for the first scratch console's database: the second part runs in its own process.
            import subprocess
            import tempfile

            with tempfile.NamedTemporaryFile(suffix=".json") as fh:
                subprocess.run([sys.executable, __file__, "--skip", "backup", "--app-servers", str(args.app_servers),  # noqa: S603
                                "--json", fh.name], check=True, stdout=subprocess.DEVNULL)
                out["drift"] = json.loads(Path(fh.name).read_text())["drift"]
        else:
            out["drift"] = drift_part(args.app_servers)
    print("\n## Backups and drift (targets: backup <= 1.3x the floor, worker peak <= 200 MiB, drift <= dry run)\n")
    print("| what | console | floor / reference | ratio | target |")
    print("| --- | --- | --- | --- | --- |")
    if "backup" in out:
        b = out["backup"]
        print(f"| backup of {args.db_mb} MB database + {args.files_mb} MB shared directory | {b['backup_s']:.1f} s "
              f"| {b['floor_s']:.1f} s (mysqldump\\|gzip, tar\\|gzip, parallel) | {b['ratio']:.2f}x | <= 1.3x |")
        print(f"| worker peak RSS during the backup | {b['worker_peak_mib']:.0f} MiB | | | <= 200 MiB |")
    if "drift" in out:
        d = out["drift"]
        print(f"| drift check, {d['app_servers']} app servers | {d['drift']:.1f} s | dry run {d['dry_run']:.1f} s "
              f"| {d['ratio']:.2f}x | <= 1.0x (noise ~5%) |")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
