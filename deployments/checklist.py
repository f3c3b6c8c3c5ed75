"""The prerequisite checklist: the guide's pre-deployment requirements, checked
over SSH before any change and again after. Every item says what it found, on
which node, and how to fix it when it failed."""

from __future__ import annotations

import json
import secrets
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from nodes import ssh, web
from nodes.models import Cluster, LayerMode, Node

from . import checklist_versions as versions_items
from .findings import Finding
from .models import CheckResult, CheckRun
from .steps import StepContext, StepFailed, mysql
from .steps.database import Verify
from .steps.tomcat_tools import SERVICE_USER

quote = ssh.quote


@dataclass
class Item:
    key: str
    title: str
    per_node: bool
    check: Callable[..., Finding]


# -- the checks ---------------------------------------------------------------------------------------

def in_shared_directory(cluster: Cluster, command: str) -> str:
    """`command` as the Tomcat service user where it can write the shared directory (Joget writes there as
    that user), else as root (before the deployment gives the directory to it). The commands only make
    new files with mktemp (a random name, never an existing path) and remove them: either way nothing
    that the service user planted there is opened."""
    user, d = SERVICE_USER, quote(cluster.wflow_home)
    return (f"if id -u {user} >/dev/null 2>&1 && runuser -u {user} -- test -w {d}; then "
            f"runuser -u {user} -- sh -c {quote(command)}; else sh -c {quote(command)}; fi")


def shared_directory_writable(cluster: Cluster, node: Node) -> Finding:
    d = quote(cluster.wflow_home)
    template = quote(cluster.wflow_home + "/.jcc-check-XXXXXXXX")
    write = in_shared_directory(cluster, f'f=$(mktemp {template} 2>/dev/null) && rm -f -- "$f"')
    script = (
        f"if [ ! -d {d} ]; then echo 'missing'; exit 2; fi; "
        f"if mountpoint -q {d}; then echo 'mounted'; else echo 'not a mount point'; fi; "
        f"if {write}; then echo 'writable'; else echo 'not writable'; exit 3; fi; "
        f"df -hP {d} | awk 'NR==2 {{print $4\" free on \"$1}}'"
    )
    with ssh.open_connection(node) as conn:
        r = conn.run(script, timeout=30)
    found = ", ".join(r.stdout.split("\n")).strip(", ") or r.stderr.strip()
    if r.exit_code == 2:
        return Finding(False, f"{cluster.wflow_home} does not exist",
                       f"Create and mount the shared directory at {cluster.wflow_home} on {node.name}, "
                       "or choose 'Set it up for me' for the shared directory.", missing=True)
    if r.exit_code == 3:
        return Finding(False, found, f"Make {cluster.wflow_home} writable for root and the Tomcat user on "
                                     f"{node.name} (NFS export rw, no_root_squash or matching ownership).")
    return Finding(r.ok, found, "" if r.ok else "See what was found.")


def same_directory_everywhere(cluster: Cluster, node: None) -> Finding:
    servers = list(cluster.app_servers())
    if len(servers) < 2:
        return Finding(True, "one app server: nothing to compare")
    # The token is the file's name (made by mktemp, empty): nothing is ever written into or read from a file
    # there that the service user could have replaced.
    template = quote(f"{cluster.wflow_home}/.jcc-same-{secrets.token_hex(8)}-XXXXXX")
    first, others = servers[0], servers[1:]
    with ssh.open_connection(first) as conn:
        w = conn.run(in_shared_directory(cluster, f"mktemp {template}"), timeout=30)
    made = w.stdout.strip()
    if not w.ok or not made.startswith(f"{cluster.wflow_home}/.jcc-same-"):
        return Finding(False, f"could not write a token on {first.name}: {w.stderr.strip()}",
                       f"Fix the shared directory on {first.name} first.")
    path = quote(made)
    missing = []
    try:
        for other in others:
            with ssh.open_connection(other) as conn:
                r = conn.run(f"test -f {path}", timeout=30)  # only whether it exists: nothing is read
            if not r.ok:
                missing.append(other.name)
    finally:
        with ssh.open_connection(first) as conn:
            conn.run(f"rm -f -- {path}", timeout=30)  # unlink never follows a symlink
    if missing:
        return Finding(False, f"a file written on {first.name} is not seen on {', '.join(missing)}",
                       f"{', '.join(missing)} must mount the same share at {cluster.wflow_home} "
                       f"as {first.name} (check the NFS server and path in /etc/fstab).", missing=True)
    return Finding(True, f"a file written on {first.name} is read on {', '.join(o.name for o in others)}")


def database_usable(cluster: Cluster, node: Node) -> Finding:
    # The same client call and scratch-table SQL as the database.verify step: one writer of the option
    # file that carries the password, one set of statements.
    db = cluster.layer("shared_database")
    if not db:
        return Finding(False, "no shared database configured", "Set up the shared database layer.")
    args = (f"--connect-timeout=5 -h {quote(db.connect_host)} -P {int(db.port)} -u {quote(db.user)} "
            f"--database={quote(db.name)}")
    with ssh.open_connection(node) as conn:
        ctx = StepContext(cluster=cluster, node=node, conn=conn, log=lambda text: None,
                          emit=lambda level, text: None, connect=None)
        try:
            r = mysql.run_client(ctx, Verify.scratch_sql(node.name), password=db.password, timeout=30,
                                 args=args)
        except StepFailed as exc:
            return Finding(False, str(exc), f"Check that /tmp on {node.name} is writable.")
    where = f"{db.user}@{db.connect_host}:{db.port}/{db.name}"
    lines = r.stdout.split()
    if r.ok and "jcc-select:updated" in lines and "jcc-count:0" in lines:
        return Finding(True, f"{where}: select, insert, update, delete, create, alter and drop work")
    err = (r.stderr.strip().splitlines() or ["no output"])[-1]
    if r.exit_code == 127:
        fix = f"Install a MySQL client on {node.name} (apt-get install mariadb-client) so the check can run."
    elif "Access denied" in err or "command denied" in err:
        fix = f"GRANT ALL ON {db.name}.* TO '{db.user}'@'%' on the database server (and check the password)."
    elif "Unknown database" in err:
        fix = f"Create the database {db.name} (or let the console set up the database)."
    elif "Can't connect" in err or "Lost connection" in err:
        # Nothing answers: first of all, the database node may be down (then every app server says so).
        server = f"the database node {db.node.name} ({db.connect_host})" if db.node_id else db.connect_host
        fix = (f"Nothing answers at {db.connect_host}:{db.port} from {node.name}: check that {server} is up and "
               f"its database server running, listening on the network (bind-address), port {db.port} open.")
    else:
        fix = (f"Make the database listen on the network (bind-address) and open port {db.port} from "
               f"{node.name} to {db.connect_host}.")
    # Before the deployment a database the console sets up is absent whatever the error; a missing client
    # on the app server is not something the database layer sets up.
    return Finding(False, f"{where}: {err}", fix, missing=r.exit_code != 127)


def _http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """GET from the node itself, through nodes.web (no proxy, no redirect followed: a 3xx is the answer):
    the status and the start of the body, or 0 and why nothing answered."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path or "/"
    reply = web.get(parts.hostname or "", parts.port or 80, f"{path}?{parts.query}" if parts.query else path,
                    timeout=timeout, limit=2000)
    return (reply.status, reply.text) if reply.status is not None else (0, reply.error)


def app_answers_http(cluster: Cluster, node: Node) -> Finding:
    url = f"http://{web.url_host(node.address)}:{node.http_port}/"
    status, body = _http_get(url)
    if status:
        return Finding(True, f"{url} answers HTTP {status}")
    return Finding(False, f"{url}: {body}",
                   f"Start the application server on {node.name} and open port {node.http_port} to the balancer.",
                   missing=True)


REPLICATION_PORTS = range(4000, 4101)  # Tomcat's receiver: port 4000, autoBind 100


def _port_ranges(ports: list[int]) -> str:
    """[4000, 4001, 4002, 4050] -> "4000-4002, 4050"."""
    out, start = [], None
    for i, p in enumerate(ports):
        start = p if start is None else start
        if i + 1 == len(ports) or ports[i + 1] != p + 1:
            out.append(f"{start}-{p}" if p != start else str(p))
            start = None
    return ", ".join(out)


def replication_possible(cluster: Cluster, node: Node) -> Finding:
    others = [n for n in cluster.app_servers() if n.pk != node.pk]
    first, last = REPLICATION_PORTS[0], REPLICATION_PORTS[-1]
    # Every port of the range to every other app server, all at once (one `timeout 3` in all, not 101):
    # bash's /dev/tcp connecting or refused means the port is reachable; only a timeout means a firewall
    # drops it. Addresses and names are allow-listed fields; only filtered ports are printed.
    probes = " ".join(
        f"for p in $(seq {first} {last}); do (timeout 3 bash -c \"exec 3<>/dev/tcp/{o.address}/$p\" 2>/dev/null; "
        f"[ $? -eq 124 ] && echo {o.name}:$p:filtered) & done;"
        for o in others
    )
    iface = f"ip -o addr show | awk '$4 ~ /^{node.address}\\// {{print $2}}' | head -n1"
    script = (f"i=$({iface}); echo iface=$i; "
              f"ip -o link show \"$i\" | grep -q MULTICAST && echo multicast=yes || echo multicast=no; {probes} wait")
    with ssh.open_connection(node) as conn:
        r = conn.run(script, timeout=30)
    lines = r.stdout.split()
    facts = dict(line.split("=", 1) for line in lines if "=" in line)
    filtered: dict[str, list[int]] = {}
    for line in lines:
        if line.endswith(":filtered"):
            name, port, _ = line.split(":")
            filtered.setdefault(name, []).append(int(port))
    problems, fixes = [], []
    if cluster.multicast and facts.get("multicast") != "yes":
        problems.append(f"no MULTICAST flag on {facts.get('iface') or 'the interface'}")
        fixes.append("Enable multicast on the interface (ip link set dev IFACE multicast on), or switch the cluster "
                     "to static membership (untick 'multicast').")
    if filtered:
        problems += [f"TCP {_port_ranges(sorted(ports))} to {name} time out"
                     for name, ports in sorted(filtered.items())]
        fixes.append(f"Open TCP {first}-{last} between the app servers in the firewall (Tomcat's replication "
                     "receiver binds the first free port of that range).")
    membership = "multicast" if cluster.multicast else "static membership"
    if problems:
        return Finding(False, f"{membership}: " + "; ".join(problems), " ".join(fixes))
    peers = ", ".join(o.name for o in others) or "no other app server"
    return Finding(True, f"{membership} possible on {facts.get('iface', '?')}; TCP {first}-{last} reachable: {peers}")


def balancer_reaches_apps(cluster: Cluster, node: None) -> Finding:
    lb = cluster.layer("load_balancer")
    if not lb or not lb.node:
        return Finding(False, "no load balancer configured", "Set up the load balancer layer.")
    url = f"http://{web.url_host(lb.node.address)}:{lb.http_port}{cluster.context_path}{web.ANON_PATH}"
    status, body = _http_get(url)
    try:
        username = json.loads(body).get("username") if status == 200 else None
    except ValueError:
        username = None
    if username:
        return Finding(True, f"{url} answers from an app server (username {username})")
    fix = (f"Configure the balancer on {lb.node.name} to proxy {cluster.context_path} to the app servers "
           "(or let the console set it up), and check that the app servers run Joget.")
    return Finding(False, f"{url}: HTTP {status or 'no answer'} {body[:200]}", fix, missing=True)


ITEMS = [
    Item("shared_directory", "Shared directory mounted and writable", True, shared_directory_writable),
    Item("shared_directory_same", "The same shared directory on every app server", False, same_directory_everywhere),
    Item("database", "Shared database reachable with the required privileges", True, database_usable),
    Item("app_http", "App server answers HTTP", True, app_answers_http),
    Item("replication", "Session replication possible", True, replication_possible),
    Item("balancer", "Balancer sends /jw to the app servers", False, balancer_reaches_apps),
    # What the cluster's Joget version needs (nodes/versions.py, docs/joget-versions.md).
    Item("war_version", "jw.war is of the Joget version the cluster is set to", False,
         versions_items.war_matches_profile),
    Item("servlet_api", "jw.war's servlet API runs on the app server's Tomcat", True, versions_items.servlet_api),
    Item("java", "Java release supported by the Joget version", True, versions_items.java_release),
    Item("clock", "Clocks of the app servers and the console agree (2 s)", False, versions_items.clock_skew),
    Item("app_peers", "App server reaches every other app server's HTTP port", True, versions_items.app_peers),
    Item("wflow_name", "wflow.name unique per node", False, versions_items.wflow_names),
]
ITEMS_BY_KEY = {i.key: i for i in ITEMS}


# -- what the plan sets up -----------------------------------------------------------------------------

def last_deployed(cluster: Cluster):
    """The last successful deployment of the whole plan (not a dry run), or None."""
    from .models import Deployment

    return (cluster.deployments.filter(status=Deployment.Status.SUCCEEDED, dry_run=False, steps=[])
            .order_by("-finished").first())


# The steps that set up what an item checks: once one of them has succeeded, the item must pass.
_LAYER_STEPS = {"shared_directory": "shared_directory.", "shared_directory_same": "shared_directory.",
                "database": "database.", "balancer": "load_balancer.", "app_http": "joget.running",
                "app_peers": "joget.running"}


def _layer_deployed(cluster: Cluster, item_key: str) -> bool:
    from .models import StepRun

    prefix = _LAYER_STEPS.get(item_key)
    return bool(prefix) and StepRun.objects.filter(
        deployment__cluster=cluster, deployment__dry_run=False, step__startswith=prefix,
        status__in=StepRun.DONE).exists()


def set_up_by_plan(cluster: Cluster, item_key: str, node: Node | None) -> str:
    """Why a failing item is no failure: its layer is on "Set it up for me" and the whole plan has not been
    deployed yet (after that, a failure is real). "" when the item must already pass."""
    if last_deployed(cluster) or _layer_deployed(cluster, item_key):
        return ""
    if item_key in ("app_http", "app_peers") and node is not None:
        # Tomcat given ("I have it") or installed, the deployment deploys Joget into it and starts it.
        return f"Will be set up: the deployment starts Tomcat with Joget on {node.name}."
    layers = {"shared_directory": ("shared_directory", "exports and mounts the shared directory"),
              "shared_directory_same": ("shared_directory", "exports and mounts the shared directory"),
              "database": ("shared_database", "installs and sets up the database"),
              "balancer": ("load_balancer", "sets up the balancer")}
    if item_key not in layers:
        return ""
    kind, what = layers[item_key]
    layer = cluster.layer(kind)
    if not layer or layer.mode != LayerMode.MANAGED:
        return ""
    where = f" on {layer.node.name}" if layer.node_id and item_key != "shared_directory_same" else ""
    return f"Will be set up: the deployment {what}{where}."


def older_than_deployment(run: CheckRun | None):
    """The last successful deployment if it finished after this checklist ran (the run shows the cluster as
    it was before), else None."""
    from .models import Deployment

    if run is None:
        return None
    return (run.cluster.deployments.filter(status=Deployment.Status.SUCCEEDED, dry_run=False,
                                           finished__gt=run.created).order_by("-finished").first())


def summary(run: CheckRun | None) -> dict:
    """How a checklist run reads wherever it is shown (its page, the overview, the wizard's step bar):
    `css` (status colour), `label`, `note`, `state` (none, running, stale, failed, passed)."""
    if run is None:
        return {"state": "none", "css": "neutral", "label": "not run yet", "note": ""}
    if not run.finished:
        return {"state": "running", "css": "running", "label": run.get_status_display(), "note": ""}
    deployed = older_than_deployment(run)
    if deployed:
        return {"state": "stale", "css": "neutral",
                "label": f"{run.get_status_display()} before deployment #{deployed.pk}",
                "note": "It shows the cluster before its last deployment: run it again to check it as deployed."}
    if run.status == CheckRun.Status.FAILED:
        return {"state": "failed", "css": "bad", "label": run.get_status_display(), "note": ""}
    planned = run.results.filter(status=CheckResult.Status.PLANNED).count()
    note = f"{planned} item{'s' if planned != 1 else ''} will be set up by the deployment." if planned else ""
    return {"state": "passed", "css": "ok", "label": run.get_status_display(), "note": note}


# -- running -----------------------------------------------------------------------------------------

def create_run(cluster: Cluster, user=None) -> CheckRun:
    with transaction.atomic():
        run = CheckRun.objects.create(cluster=cluster, started_by=user)
        servers = list(cluster.app_servers())
        CheckResult.objects.bulk_create(
            CheckResult(check_run=run, item=item.key, position=pos, node=node)
            for pos, item in enumerate(ITEMS)
            for node in (servers if item.per_node else [None])
        )
    return run


def start(cluster: Cluster, user=None) -> CheckRun:
    """Create the run and one Celery task per item and node: they fill in live."""
    from .tasks import run_check

    run = create_run(cluster, user)
    for result_id in run.results.values_list("pk", flat=True):
        transaction.on_commit(lambda pk=result_id: run_check.delay(pk))
    return run


def run_one(result_id: int) -> None:
    result = CheckResult.objects.select_related("check_run__cluster", "node__cluster__credential",
                                                "node__credential").get(pk=result_id)
    item = ITEMS_BY_KEY[result.item]
    cluster = result.check_run.cluster
    try:
        finding = item.check(cluster, result.node)
    except ssh.SSHError as exc:
        finding = Finding(False, str(exc), "Make the node reachable over SSH (and its host key confirmed).")
        planned = ""  # an unreachable node is a failure whatever the plan would set up on it
    else:
        planned = set_up_by_plan(cluster, item.key, result.node) if finding.missing else ""
    status = CheckResult.Status.PASS if finding.ok else CheckResult.Status.PLANNED if planned else \
        CheckResult.Status.FAIL
    CheckResult.objects.filter(pk=result_id).update(
        status=status, found=finding.found[:2000], fix=planned or ("" if finding.ok else finding.fix),
        finished=timezone.now(),
    )
    _finish_if_done(result.check_run_id)


def _finish_if_done(run_id: int) -> None:
    with transaction.atomic():
        run = CheckRun.objects.select_for_update().get(pk=run_id)
        statuses = list(run.results.values_list("status", flat=True))
        if run.finished or CheckResult.Status.PENDING in statuses:
            return
        run.status = CheckRun.Status.FAILED if CheckResult.Status.FAIL in statuses else CheckRun.Status.PASSED
        run.finished = timezone.now()
        run.save(update_fields=["status", "finished"])


def run_now(cluster: Cluster, user=None, workers: int = 16) -> CheckRun:
    """The same checks in this process, in parallel (the command line needs no worker)."""
    from django.db import connection

    run = create_run(cluster, user)

    def one(pk):
        try:
            run_one(pk)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, list(run.results.values_list("pk", flat=True))))
    run.refresh_from_db()
    return run
