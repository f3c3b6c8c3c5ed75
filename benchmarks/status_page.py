"""Status pages at scale: 500 nodes and 30 days of samples at the default interval, and a check cycle over
500 simulated nodes.

Run as root from the project directory, with the test environment (DATABASE_URL names a PostgreSQL server
whose user may create databases):

    . /tmp/testenv.sh && .venv/bin/python benchmarks/status_page.py [--nodes 500] [--days 30] [--renders 7]

1. Creates a scratch database `jcc_bench_<pid>` on DATABASE_URL's server (dropped at the end, also on
   Ctrl-C), migrates it, and fills it: one cluster of N nodes (1 balancer, 1 database, N-2 app servers),
   the current state of every check (a few percent failing), the latest numbers per node, 30 days of
   events, and one HealthSample per node per 30 s for 30 days (N x 86,400 rows), written server-side with
   generate_series one node at a time, the primary key built afterwards.
2. Renders the cluster status page (full page and the polled body) and a node page (24 hours of samples)
   through Django's test client, several times, and prints the median server time and the queries.
3. Checks 500 simulated nodes: a full testbed (lb, db, 8 app servers) whose hosts are reused: the N
   Node rows point at those hosts round-robin (about 62 nodes per app-server host, each with its own
   name and jvmRoute). Services as in tests/nodes/test_health.py: MariaDB, a python Tomcat stand-in per
   app host, Apache with a balancer of the 8 real hosts. Runs nodes.health.run_cycle on that cluster (in
   the same scratch database, next to the 43 million samples) and prints the cycle times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

INTERVAL_S = 30
SIM_APP_HOSTS = 8
FIGURES: dict[str, str] = {}  # what benchmarks/run_all.py prints (--json)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def create_database(url: str, name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()


def drop_database(url: str, name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def setup_django(bench_url: str) -> None:
    from benchmarks.harness import base_env

    # Run on its own (or from run_all.py) without a .env: the benchmark-only secrets of the harness.
    for key, value in base_env("unused").items():
        if key in ("SECRET_KEY", "SECRETS_ENCRYPTION_KEY", "ALLOWED_HOSTS"):
            os.environ.setdefault(key, value)
    os.environ["DATABASE_URL"] = bench_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "joget_cluster.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    setup_test_environment()  # allows the test client's host; locmem e-mail
    call_command("migrate", verbosity=0)


# ---- data -----------------------------------------------------------------------------------------------------


def make_cluster(name: str, n_nodes: int):
    from nodes.models import Cluster, LoadBalancer, Node, SharedDatabase

    cluster = Cluster.objects.create(name=name)
    nodes = [Node(cluster=cluster, name="lb", address="10.9.0.10", is_load_balancer=True),
             Node(cluster=cluster, name="db", address="10.9.0.20", is_database=True)]
    for i in range(1, n_nodes - 1):
        nodes.append(Node(cluster=cluster, name=f"app{i:03d}", address=f"10.9.{i // 250 + 1}.{i % 250 + 1}",
                          is_app_server=True, jvm_route=f"node{i:03d}"))
    Node.objects.bulk_create(nodes)
    nodes = list(Node.objects.filter(cluster=cluster).order_by("name"))
    by_name = {n.name: n for n in nodes}
    LoadBalancer.objects.create(cluster=cluster, node=by_name["lb"])
    SharedDatabase.objects.create(cluster=cluster, node=by_name["db"], password="x")
    return cluster, nodes


def fill_current(cluster, nodes, now) -> None:
    """States per check (about 3% of app servers failing, 5% warning), latest numbers, 30 days of events."""
    import random

    from nodes import health
    from nodes.models import CheckState, HealthEvent, NodeHealth

    rnd = random.Random(8)
    S = health.HealthState
    states, latest, events = [], [], []
    app_keys = ["ssh", "host_key", "load", "memory", "disk", "wflow", "tomcat", "http", "balancer_route",
                "balancer_member", "replication", "servers_json"]
    for node in nodes:
        keys = app_keys if node.is_app_server else ["ssh", "host_key", "load", "memory", "disk"]
        keys = keys + (["balancer"] if node.is_load_balancer else []) + (["database"] if node.is_database else [])
        roll = rnd.random()
        broken = {"tomcat", "http"} if roll < 0.03 else {"memory"} if roll < 0.08 else set()
        for key in keys:
            st = (S.BAD if key in ("tomcat", "http") else S.WARN) if key in broken else S.OK
            since = now - timedelta(minutes=rnd.randint(1, 60 * 24 * 30))
            states.append(CheckState(cluster=cluster, node=node, key=key, state=st, since=since,
                                     detail=f"{key} detail of {node.name}"))
        latest.append(NodeHealth(node=node, checked_at=now, level=2 if broken else 0, up=not broken,
                                 ssh_ms=rnd.randint(30, 90), http_ms=rnd.randint(5, 30), balancer_ms=rnd.randint(8, 40),
                                 load_x100=rnd.randint(0, 200), mem_pct=rnd.randint(20, 60), disk_pct=40,
                                 wflow_free_mb=50000, details={k: ["ok", "fine"] for k in keys}))
    for i in range(3000):
        node = rnd.choice(nodes)
        old, new = (S.OK, S.BAD) if i % 2 else (S.BAD, S.OK)
        t = now - timedelta(seconds=rnd.randint(0, 30 * 86400))
        events.append(HealthEvent(cluster=cluster, node=node, key=rnd.choice(["tomcat", "http", "ssh"]), time=t,
                                  old_state=old, new_state=new, detail="benchmark event"))
    CheckState.objects.bulk_create(states, batch_size=2000)
    NodeHealth.objects.bulk_create(latest, batch_size=1000)
    HealthEvent.objects.bulk_create(events, batch_size=2000)


# Cheap arithmetic instead of random(): generating the rows must not cost more than writing them.
SAMPLES_SQL = """
INSERT INTO nodes_healthsample (node_id, time, level, up, ssh_ms, http_ms, balancer_ms, db_ms, load_x100,
                                mem_pct, disk_pct, wflow_free_mb)
SELECT %(node)s, %(start)s::timestamptz + i * interval '30 seconds',
       CASE WHEN (i + %(node)s) %% 211 = 0 THEN 2 ELSE 0 END, (i + %(node)s) %% 211 <> 0,
       30 + (i * 7 + %(node)s) %% 61, CASE WHEN (i + %(node)s) %% 211 = 0 THEN NULL ELSE 5 + (i * 3) %% 23 END,
       8 + (i * 5) %% 29, NULL, (i + %(node)s) %% 150, 30 + i %% 19, 40, 50000
FROM generate_series(0, %(count)s - 1) AS i
"""


def fill_samples(nodes, now, days: int) -> tuple[int, float]:
    """Without the primary key and the foreign key while loading (the deferred foreign-key check per row
    triples the cost), then both are built once, as a restore would."""
    from django.db import connection

    count = days * 86400 // INTERVAL_S
    start = now - timedelta(seconds=(count - 1) * INTERVAL_S)
    t0 = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid = 'nodes_healthsample'::regclass AND contype IN ('p', 'f')")
        constraints = cur.fetchall()
        for name, _ in constraints:
            cur.execute(f'ALTER TABLE nodes_healthsample DROP CONSTRAINT "{name}"')
        for i, node in enumerate(nodes, 1):
            cur.execute(SAMPLES_SQL, {"node": node.id, "start": start, "count": count})
            if i % 50 == 0:
                print(f"  samples: {i}/{len(nodes)} nodes, {time.perf_counter() - t0:.0f} s", flush=True)
        cur.execute("SET maintenance_work_mem = '1GB'")
        for name, definition in sorted(constraints, key=lambda c: not c[1].startswith("PRIMARY")):
            cur.execute(f'ALTER TABLE nodes_healthsample ADD CONSTRAINT "{name}" {definition}')
        print(f"  keys rebuilt: {time.perf_counter() - t0:.0f} s", flush=True)
        cur.execute("VACUUM (ANALYZE) nodes_healthsample")
        cur.execute("SELECT count(*), pg_size_pretty(pg_total_relation_size('nodes_healthsample')) "
                    "FROM nodes_healthsample")
        total, size = cur.fetchone()
    print(f"  {total:,} samples, {size} with the index, in {time.perf_counter() - t0:.0f} s")
    FIGURES["samples"] = f"{total:,} ({size} with the index)"
    return total, time.perf_counter() - t0


# ---- renders --------------------------------------------------------------------------------------------------


def timed_renders(client, url: str, renders: int, headers=None) -> tuple[list[float], int, bool]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times, queries, touched = [], 0, False
    for _ in range(renders):
        with CaptureQueriesContext(connection) as ctx:
            t0 = time.perf_counter()
            response = client.get(url, **(headers or {}))
            times.append(time.perf_counter() - t0)
        assert response.status_code == 200, (url, response.status_code)
        queries = len(ctx.captured_queries)
        touched = touched or any("nodes_healthsample" in q["sql"] for q in ctx.captured_queries)
    return times, queries, touched


def render_pages(cluster, nodes, renders: int) -> None:
    from django.contrib.auth.models import User
    from django.test import Client
    from django.urls import reverse

    user = User.objects.create_superuser("bench", "bench@example.com", "bench-pass-123")
    client = Client()
    client.force_login(user)
    app = next(n for n in nodes if n.is_app_server)
    pages = [
        ("cluster status page", reverse("nodes:cluster_status", args=[cluster.name]), None),
        ("cluster body (HTMX poll)", reverse("nodes:cluster_status_body", args=[cluster.name]),
         {"HTTP_HX_REQUEST": "true"}),
        ("node status page (24 h chart)", reverse("nodes:node_status", args=[cluster.name, app.name]), None),
    ]
    print(f"\nServer time per render, {renders} renders each (Django test client, in-process):")
    for label, url, headers in pages:
        times, queries, touched = timed_renders(client, url, renders, headers)
        ms = [t * 1000 for t in times]
        print(f"  {label:<30} median {statistics.median(ms):7.1f} ms  min {min(ms):7.1f}  max {max(ms):7.1f}  "
              f"{queries} queries{'  (reads samples)' if touched else ''}")
        FIGURES[f"{label}, server time"] = (f"median {statistics.median(ms):.0f} ms (min {min(ms):.0f}, max "
                                            f"{max(ms):.0f}), {queries} queries")
    size = len(client.get(pages[0][1]).content)
    print(f"  cluster status page size: {size / 1024:.0f} KB")
    FIGURES["cluster status page size"] = f"{size / 1024:.0f} KB"


def time_prune(nodes, now, days: int) -> None:
    """The hourly prune when samples are one hour past retention: one node's oldest range at a time."""
    from django.conf import settings

    from nodes import health

    settings.HEALTH_RETENTION_DAYS = days
    t0 = time.perf_counter()
    removed = health.prune(now + timedelta(hours=1))
    print(f"\nprune (1 hour past retention): {removed:,} samples deleted in {time.perf_counter() - t0:.2f} s")
    FIGURES["hourly prune"] = f"{removed:,} samples in {time.perf_counter() - t0:.2f} s"


# ---- 500 simulated nodes --------------------------------------------------------------------------------------


def simulated_cluster(inventory: dict, n_nodes: int):
    """N Node rows on the testbed's hosts, round-robin over the app-server hosts."""
    from nodes.inventory import load_inventory
    from nodes.models import Node

    inv = dict(inventory)
    inv["cluster"], inv["artifacts"] = "sim", []
    cluster = load_inventory(inv, replace=True)
    hosts = [n for n in inventory["nodes"] if "app_server" in n["roles"]]
    existing = Node.objects.filter(cluster=cluster).count()
    extra = []
    for i in range(n_nodes - existing):
        h = hosts[i % len(hosts)]
        # Same host, same Tomcat (base and port): a node of its own in the console.
        extra.append(Node(cluster=cluster, name=f"sim{i:03d}", address=h["address"], is_app_server=True,
                          jvm_route=f"sim{i:03d}", host_key=h["host_key"], http_port=8080,
                          install_path="/opt/joget", catalina_home=h["catalina_home"],
                          catalina_base=h["catalina_base"]))
    Node.objects.bulk_create(extra)
    return cluster


def _cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)  # all threads of this process
    return usage.ru_utime + usage.ru_stime


def cycle_simulated(n_nodes: int, cycles: int) -> None:
    from nodes import health
    from nodes.testbed import Testbed
    from tests.nodes.test_health import start_app_standins, start_balancer, start_mariadb

    testbed = Testbed(f"jb{os.getpid() % 0xFFFFF:x}", app_servers=SIM_APP_HOSTS, full=True, log=lambda m: None)
    try:
        inventory = testbed.up(recreate=True)
        start_mariadb(testbed, inventory)
        start_app_standins(testbed, inventory)
        start_balancer(testbed, inventory)
        cluster = simulated_cluster(inventory, n_nodes)
        print(f"\nCheck cycle over {n_nodes} simulated nodes ({SIM_APP_HOSTS} app-server hosts + lb + db of a "
              f"full testbed, each host checked as ~{n_nodes // SIM_APP_HOSTS} nodes; "
              f"{health.setting('HEALTH_CHECK_THREADS')} threads):")
        times, cpu = [], []
        for i in range(cycles):
            c0 = _cpu()
            report = health.run_cycle(cluster.pk)
            times.append(report.seconds)
            cpu.append(_cpu() - c0)
            not_ok = Counter(f"{k} {r.state}" for (_, k), r in report.results.items()
                             if r.state != health.HealthState.OK)
            print(f"  cycle {i + 1}: {report.seconds:.2f} s wall, {cpu[-1]:.2f} s CPU in the console process; "
                  f"{len(report.results)} checks, {len(report.events)} events; not ok: {dict(not_ok)}")
        FIGURES[f"check cycle, {n_nodes} simulated nodes"] = (
            f"median {statistics.median(times):.2f} s wall, {statistics.median(cpu):.2f} s console CPU, "
            f"{len(report.results)} checks (interval {health.setting('HEALTH_CHECK_INTERVAL'):g} s)")
        print(f"  median {statistics.median(times):.2f} s wall, {statistics.median(cpu):.2f} s console CPU "
              f"(interval {health.setting('HEALTH_CHECK_INTERVAL'):g} s); the simulated hosts' sshd and scripts "
              "run on the same 2 cores")
    finally:
        testbed.down()


def pages(args) -> None:
    from django.utils import timezone

    now = timezone.now()
    t0 = time.perf_counter()
    cluster, nodes = make_cluster("bench", args.nodes)
    fill_current(cluster, nodes, now)
    print(f"{args.nodes} nodes, their check states, latest numbers and 3,000 events: {time.perf_counter() - t0:.1f} s")
    print(f"Samples: {args.nodes} nodes x {args.days} days at {INTERVAL_S} s ...")
    FIGURES["data set"] = f"{args.nodes} nodes, {args.days} days of samples every {INTERVAL_S} s, 3,000 events"
    fill_samples(nodes, now, args.days)
    render_pages(cluster, nodes, args.renders)
    time_prune(nodes, now, args.days)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--renders", type=int, default=7)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--no-cycle", action="store_true", help="skip the simulated check cycle (needs root)")
    parser.add_argument("--only-cycle", action="store_true", help="skip the samples and the renders")
    parser.add_argument("--json", help="also write the figures to this file (benchmarks/run_all.py)")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        print("DATABASE_URL must name a PostgreSQL server (source /tmp/testenv.sh)", file=sys.stderr)
        return 2
    name = f"jcc_bench_{os.getpid()}"
    create_database(url, name)
    try:
        setup_django(with_database(url, name))
        if not args.only_cycle:
            pages(args)
        if not args.no_cycle:
            if os.geteuid() != 0:
                print("the simulated cycle needs root (testbed): skipped", file=sys.stderr)
            else:
                cycle_simulated(args.nodes, args.cycles)
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(url, name)
        print(f"\ndropped {name}")
        if args.json:
            Path(args.json).write_text(json.dumps(FIGURES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
