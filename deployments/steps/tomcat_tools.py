"""Tomcat on an app server, for every layer that needs it: where its files are, how it starts and stops
(as the service user, `catalina.sh`, no systemd), how it answers, and its files (server.xml edits, the
node's host name and address).

The steps that install Tomcat live in tomcat.py; joget.running, replication and the post-deployment
test use these functions too.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

from deployments import xmledit
from nodes import web
from nodes.ssh import NodeConnection, quote

from .base import UNREAD, Change, StepContext, StepFailed

if TYPE_CHECKING:
    from nodes.models import Node

SERVICE_USER = "tomcat"  # Debian's tomcat packages use this name too, so an existing install keeps its owner
OWNER = f"{SERVICE_USER}:{SERVICE_USER}"
BASE_DIRS = ("bin", "conf", "lib", "logs", "temp", "webapps", "work")
START_TIMEOUT = 180.0  # ~5 s alone, 8-10 s two at once on an idle small host; minutes on a loaded one
STOP_TIMEOUT = 30
STOP_POLL = 0.2  # seconds between checks that a stopping JVM is gone
URL_POLL = 0.25  # seconds between tries of a URL that is not answering yet (Tomcat starting)
FINGERPRINT = ".jcc-started"  # in CATALINA_BASE: what the config looked like when the console last started Tomcat
STARTED_PID = ".jcc-started-pid"  # in CATALINA_BASE: the pid of the Tomcat the console last started
ARCHIVE_MARKER = ".jcc-archive"  # in an unpacked CATALINA_HOME: the sha256 of the archive it came from
CONF_FILES = ("server.xml", "context.xml", "web.xml", "catalina.properties", "logging.properties")
_HOSTNAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})$")


# ---- where things are ---------------------------------------------------------------------------


def home(node: Node) -> str:
    return node.effective_catalina_home


def base(node: Node) -> str:
    return node.effective_catalina_base


def pidfile(node: Node) -> str:
    return f"{base(node)}/temp/catalina.pid"


def catalina_out(node: Node) -> str:
    return f"{base(node)}/logs/catalina.out"


def read_catalina_out(node: Node, command: str) -> str:
    """`command` (catalina.out is "$1" in it) as the service user, never as root: that user could have made
    catalina.out a symlink to a file only root may read, and what the command prints is shown."""
    return f"runuser -u {SERVICE_USER} -- sh -c {quote(command)} sh {quote(catalina_out(node))}"


def server_xml(node: Node) -> str:
    return f"{base(node)}/conf/server.xml"


url_host = web.url_host


def node_url(node: Node, path: str = "/") -> str:
    return f"http://{url_host(node.address)}:{node.http_port}{path}"


def catalina_env(node: Node) -> str:
    """`env` assignments for catalina.sh: paths come from validated model fields, quoted anyway."""
    return " ".join([
        f"CATALINA_HOME={quote(home(node))}",
        f"CATALINA_BASE={quote(base(node))}",
        f"CATALINA_PID={quote(pidfile(node))}",
    ])


def as_service_user(node: Node, command: str) -> str:
    """Run catalina.sh as the service user from the base directory (runuser: no password, no login shell)."""
    return f"cd {quote(base(node))} && runuser -u {SERVICE_USER} -- env {catalina_env(node)} {command}"


def ensure_user_command() -> str:
    # Two steps may create the user at once on one node: the second useradd fails, `id` then succeeds.
    return (f"id -u {SERVICE_USER} >/dev/null 2>&1 || useradd --system --user-group --no-create-home "
            f"--home-dir /nonexistent --shell /usr/sbin/nologin {SERVICE_USER} || id -u {SERVICE_USER}")


def _conn(ctx: StepContext, node: Node | None) -> tuple[NodeConnection, Node]:
    """The connection for `node`: the step's own when it is the step's node, else one from the pool."""
    if node is None or (ctx.node is not None and ctx.node.pk == node.pk):
        if ctx.node is None:
            raise StepFailed("Internal error: a Tomcat function was called without a node.")
        return ctx.conn, ctx.node
    return ctx.connect(node), node


# ---- control ------------------------------------------------------------------------------------


def pids_command(node: Node) -> str:
    """Print the pid of every JVM whose argv holds exactly -Dcatalina.base=<this base>.

    The argv is what catalina.sh passes, so this finds our Tomcat whether or not the pid
    file is current (a kill -9 leaves a stale one) and never someone else's Tomcat.
    """
    marker = quote(f"-Dcatalina.base={base(node)}")
    return (f"for p in $(pgrep -x java); do tr '\\0' '\\n' < /proc/$p/cmdline 2>/dev/null "
            f"| grep -qxF -- {marker} && echo $p; done; true")


def running_pid(ctx: StepContext, node: Node | None = None) -> int | None:
    """The pid of this node's Tomcat, or None."""
    conn, node = _conn(ctx, node)
    out = ctx.run(pids_command(node), conn=conn, quiet=True, timeout=30).stdout.split()
    return int(out[0]) if out and out[0].isdigit() else None


def fingerprint_command(node: Node) -> str:
    """A listing of what Tomcat reads at start (config, WARs, /etc/hosts, Joget's datasource).

    Written when the console starts Tomcat; when it differs later, a restart is due.
    """
    b, cluster = base(node), node.cluster
    wflow = cluster.wflow_home
    files = [f"{b}/conf/{name}" for name in CONF_FILES] + [f"{b}/bin/setenv.sh", "/etc/hosts",
                                                           f"{wflow}/app_datasource.properties",
                                                           f"{wflow}/app_datasource-{cluster.datasource_profile}"
                                                           ".properties"]
    listed = " ".join(quote(f) for f in files) + f" {quote(b)}/webapps/*.war"
    # As the service user: these paths are in its directories, and what root would read there is shown.
    return f"runuser -u {SERVICE_USER} -- sh -c " + quote(
        f"echo home {quote(home(node))}; cat {quote(home(node) + '/' + ARCHIVE_MARKER)} 2>/dev/null || true; "
        f"for f in {listed}; do if [ -f \"$f\" ]; then sha256sum \"$f\" 2>/dev/null || echo \"unreadable $f\"; "
        f"else echo \"missing $f\"; fi; done")


def current_fingerprint(ctx: StepContext, node: Node | None = None) -> str:
    conn, node = _conn(ctx, node)
    return ctx.run(fingerprint_command(node), conn=conn, quiet=True, timeout=60).stdout


def stored_fingerprint(ctx: StepContext, node: Node | None = None) -> str | None:
    conn, node = _conn(ctx, node)
    data = ctx.read_file(f"{base(node)}/{FINGERPRINT}", conn=conn)
    return data.decode("utf-8", "replace") if data is not None else None


def start(ctx: StepContext, node: Node | None = None, *, timeout: float = START_TIMEOUT, wait: bool = True) -> None:
    """Start Tomcat as the service user, detached (its own session, stdin from /dev/null, output to
    catalina.out) so the SSH channel closes and Cancel does not kill it; wait until HTTP answers (`wait=False`:
    the caller waits for a page of its own with wait_for_url, which answers only after HTTP does)."""
    conn, node = _conn(ctx, node)
    pid = running_pid(ctx, node)
    if pid is not None:  # a second JVM on the same base would only fight the first for its ports
        ctx.log(f"Tomcat is already running on {node.name} (pid {pid}).")
        return
    b = quote(base(node))
    ctx.write_file(f"{base(node)}/{FINGERPRINT}", current_fingerprint(ctx, node).encode(), mode="0644",
                   owner=OWNER, backup=False, conn=conn)
    script = "; ".join([
        "set -e",
        f"rm -f {quote(pidfile(node))}",  # stale after a crash; catalina.sh would refuse if its pid were reused
        f"cd {b}",
        f"setsid -w runuser -u {SERVICE_USER} -- env {catalina_env(node)} "
        f"{quote(home(node) + '/bin/catalina.sh')} start </dev/null",
    ])
    ctx.run(script, conn=conn, check=True, timeout=120)
    if wait:
        wait_for_url(ctx, node, "/", timeout=timeout)
    ctx.write_file(f"{base(node)}/{STARTED_PID}", f"{running_pid(ctx, node)}\n".encode(), mode="0644",
                   owner=OWNER, backup=False, conn=conn)


def started_elsewhere(ctx: StepContext, pid: int, node: Node | None = None) -> bool:
    """The running Tomcat (`pid`) is not the one the console last started: someone restarted it by hand, so the
    stored fingerprint says nothing of the configuration it runs. (No record yet: not known, False.)"""
    conn, node = _conn(ctx, node)
    data = ctx.read_file(f"{base(node)}/{STARTED_PID}", conn=conn)
    return data is not None and data.decode("utf-8", "replace").strip() != str(pid)


def stop(ctx: StepContext, node: Node | None = None, *, timeout: int = STOP_TIMEOUT) -> None:
    """Stop Tomcat gracefully: SIGTERM to its JVM (Tomcat's shutdown hook stops it as `catalina.sh stop` does,
    without starting a second JVM to send the shutdown word), watched every 0.2 s; kill -9 after `timeout` s."""
    conn, node = _conn(ctx, node)
    pid = running_pid(ctx, node)
    if pid is None:
        ctx.log(f"Tomcat is not running on {node.name}.")
        return
    polls = int(timeout / STOP_POLL)
    script = "; ".join([
        f"kill -TERM {pid} 2>/dev/null || true",
        f"i=0; while kill -0 {pid} 2>/dev/null && [ $i -lt {polls} ]; do sleep {STOP_POLL}; i=$((i+1)); done",
        f"if kill -0 {pid} 2>/dev/null; then echo 'still running after {int(timeout)} s: kill -9 {pid}'; "
        f"kill -9 {pid}; sleep 1; fi",
        f"rm -f {quote(pidfile(node))}",
    ])
    ctx.run(script, conn=conn, timeout=timeout + 60)
    if running_pid(ctx, node) is not None:
        raise StepFailed(f"Tomcat (pid {pid}) on {node.name} did not stop, even after kill -9.")


def restart(ctx: StepContext, node: Node | None = None) -> None:
    stop(ctx, node)
    start(ctx, node)


def http_check(ctx: StepContext, node: Node | None = None, path: str = "/", *, timeout: float = 5) -> int:
    """The HTTP status of GET <node>:<http port><path>, asked from the node itself; 0 when nothing answers."""
    conn, node = _conn(ctx, node)
    r = ctx.run(f"curl -s -o /dev/null -m {int(timeout)} -w '%{{http_code}}' {quote(node_url(node, path))}",
                conn=conn, quiet=True, timeout=timeout + 30)
    code = r.stdout.strip()[-3:]
    return int(code) if code.isdigit() else 0


def wait_for_url(ctx: StepContext, node: Node | None, path: str, *, contains: str = "",
                 timeout: float = START_TIMEOUT) -> str:
    """Poll <node>:<port><path> from the node until it answers (and holds `contains`); returns the body.

    One shell loop on the node (not one SSH command per try). Fails at once if Tomcat's JVM is gone.
    """
    conn, node = _conn(ctx, node)
    url = quote(node_url(node, path))
    check = f"printf '%s' \"$body\" | grep -qF -- {quote(contains)}" if contains else "true"
    script = (
        f"end=$(( $(date +%s) + {int(timeout)} )); "
        f"while :; do body=$(curl -sS -m 10 {url} 2>/dev/null) && {check} && "
        f"{{ printf '%s\\n' \"$body\" | head -c 400; echo; exit 0; }}; "
        f"[ -n \"$({pids_command(node)})\" ] || {{ echo 'Tomcat is not running' >&2; exit 3; }}; "
        f"[ $(date +%s) -lt $end ] || exit 4; sleep {URL_POLL}; done"
    )
    ctx.log(f"waiting up to {int(timeout)} s for {node_url(node, path)}" + (f" to show {contains}" if contains else ""))
    r = ctx.run(script, conn=conn, quiet=True, timeout=timeout + 60)
    if r.ok:
        return r.stdout.strip()
    ctx.run(read_catalina_out(node, 'tail -n 30 -- "$1"'), conn=conn, timeout=30)
    why = "Tomcat's JVM is not running" if r.exit_code == 3 else f"no answer within {int(timeout)} s"
    raise StepFailed(f"{node_url(node, path)} on {node.name}: {why}. See the end of catalina.out above "
                     f"({catalina_out(node)}).", exit_code=r.exit_code)


# ---- files and facts on a node -------------------------------------------------------------------


def want_xml(ctx: StepContext, path: str, current: bytes, *edits, what: str, on_node=UNREAD) -> Change | None:
    """A Change writing `path` when the edits alter it (owned by the service user, not world-readable).
    `current` is what the edits start from; `on_node`, as in want_file, the file as just read from the node."""
    try:
        new = xmledit.edit(current, *edits, what=what)
    except xmledit.XmlEditError as exc:
        raise StepFailed(f"{path}: {exc}") from None
    return ctx.want_file(path, new, mode="0640", owner=OWNER, on_node=on_node)


def node_hostname(ctx: StepContext) -> str:
    name = ctx.run("hostname", quiet=True, check=True, timeout=30).stdout.strip()
    if not _HOSTNAME.match(name):
        raise StepFailed(f"The host name of {ctx.node.name} is {name!r}, which is not a plain host name.")
    return name


def node_ip(ctx: StepContext, node: Node | None = None) -> str:
    """The node's own IP: its address if that is an IP, else the address our SSH session arrived on."""
    conn, node = _conn(ctx, node)
    try:
        return str(ipaddress.ip_address(node.address))
    except ValueError:
        pass
    # sudo (for non-root logins) would drop SSH_CONNECTION: ask without it; this only reads a variable.
    r = conn.run('echo "$SSH_CONNECTION"', sudo=False, timeout=30)
    fields = r.stdout.split()
    if len(fields) == 4:
        try:
            return str(ipaddress.ip_address(fields[2]))
        except ValueError:
            pass
    raise StepFailed(f"Could not find the IP address of {node.name} ({node.address}); give its IP as the address.")


def conf_source(ctx: StepContext) -> str:
    """Where a fresh base gets its conf: <home>/conf, or Debian's <home>/etc (its conf lives in /etc/tomcatN)."""
    h = home(ctx.node)
    r = ctx.run(f"test -f {quote(h + '/conf/server.xml')} && echo conf; "
                f"test -f {quote(h + '/etc/server.xml')} && echo etc; true", quiet=True, timeout=30)
    found = r.stdout.split()
    if "conf" in found:
        return f"{h}/conf"
    if "etc" in found:
        return f"{h}/etc"
    raise StepFailed(f"Neither {h}/conf/server.xml nor {h}/etc/server.xml exists on {ctx.node.name}.")
