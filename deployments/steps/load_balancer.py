"""Step 7 of the guide: Apache httpd 2.4 as the load balancer, sticky by jvmRoute.

`load_balancer.server` installs Apache and enables the proxy modules; `load_balancer.site`
writes the site (one BalancerMember per app server, route = its jvmRoute), enables it,
checks the configuration and reloads. Debian/Ubuntu layout (/etc/apache2, a2enmod,
a2ensite, apache2ctl), as in the guide.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

from nodes import web
from nodes.models import LayerMode, LoadBalancer

from . import register
from .base import Change, ManagedStep, Step, StepContext, StepFailed, quote
from .toolbox import service_control

APACHE_DIR = "/etc/apache2"
# headers/proxy/proxy_http/proxy_balancer as in the guide; the balancer also needs lbmethod_byrequests
# (its default method) and slotmem_shm (its shared state); `Require ip` needs authz_host.
MODULES = ("headers", "proxy", "proxy_http", "proxy_balancer", "lbmethod_byrequests", "slotmem_shm", "authz_host")
PACKAGES = ("apache2", "curl")  # curl: the verify asks Apache from the balancer node itself
PID_FILE = "/var/run/apache2/apache2.pid"
# apache2ctl makes its lock dir under /var/lock (-> /run/lock); a host booted without systemd-tmpfiles
# or initscripts (containers, the testbed) has no /run/lock and every apache2ctl call fails.
LOCK_DIR = '[ -d /var/lock/ ] || mkdir -p "$(readlink -f /var/lock)"'
IS_RUNNING = f'test -f {PID_FILE} && kill -0 "$(cat {PID_FILE})" 2>/dev/null'
START = f"{LOCK_DIR}; {service_control('start', unit='apache2', own='apache2ctl start')}"
RELOAD = f"{LOCK_DIR}; {service_control('reload', unit='apache2', own='apache2ctl graceful')}"
CONFIGTEST = f"{LOCK_DIR}; apache2ctl configtest"
# How long httpd leaves a failed member alone before trying it again (its default is 60 s):
# a restarted Tomcat gets requests again after this.
MEMBER_RETRY = 10
# A member the admin disabled or drains (Node.balancer_state) stays so across reloads: httpd 2.4's status flags.
MEMBER_STATUS = {"disabled": " status=+D", "drain": " status=+N"}
ANON_PATH = web.ANON_PATH
HTTP_TIMEOUT = 10.0
url_host = web.url_host


def load_balancer_of(cluster) -> LoadBalancer | None:
    lb = cluster.layer("load_balancer")
    return lb if lb and lb.node_id else None


def site_path(lb: LoadBalancer) -> str:
    return f"{APACHE_DIR}/sites-available/{lb.site_name}.conf"


def enabled_path(lb: LoadBalancer) -> str:
    return f"{APACHE_DIR}/sites-enabled/{lb.site_name}.conf"




def require_manager(allow: str) -> str:
    """The Require line of balancer-manager: an IP (or host name) the admin named, else loopback only."""
    if not allow:
        return "Require ip 127.0.0.1"
    try:
        ipaddress.ip_address(allow)
        return f"Require ip {allow}"
    except ValueError:
        return f"Require host {allow}"  # double reverse lookup: prefer an address


def sticky(lb: LoadBalancer) -> str:
    # Cookie name, then the URL path parameter (;jsessionid=) for clients without cookies.
    return f"{lb.sticky_cookie}|{lb.sticky_cookie.lower()}"


def render_site(cluster, lb: LoadBalancer, members, *, listen: bool) -> str:
    """The site file, httpd 2.4 syntax. `listen`: add `Listen <port>` (only when no other file listens on it:
    a second Listen on the same port is a syntax error)."""
    ctx_path = cluster.context_path
    balancer = f"balancer://{cluster.name}"
    port = lb.http_port
    lines = [
        f"# Load balancer of Joget cluster {cluster.name}, written by the Joget cluster console.",
        "# Edits here are replaced at the next deployment: change the cluster in the console instead.",
    ]
    if listen:
        lines.append(f"Listen {port}")
    lines += [
        "",
        f"<VirtualHost *:{port}>",
        "    ProxyRequests Off",
        "    ProxyPreserveHost On",
        f"    ErrorLog ${{APACHE_LOG_DIR}}/{lb.site_name}-error.log",
        f"    CustomLog ${{APACHE_LOG_DIR}}/{lb.site_name}-access.log combined",
        "",
        f'    <Proxy "{balancer}">',
    ]
    for node in members:
        lines.append(f'        BalancerMember "http://{url_host(node.address)}:{node.http_port}{ctx_path}" '
                     f"route={node.jvm_route} retry={MEMBER_RETRY}{MEMBER_STATUS.get(node.balancer_state, '')}")
    lines += [
        "        ProxySet lbmethod=byrequests",
        "        Require all granted",
        "    </Proxy>",
        "",
        # No trailing slashes: /jw and /jw/... both match, /jwdesigner does not (path-segment match).
        f'    ProxyPass "{ctx_path}" "{balancer}" stickysession={sticky(lb)}',
        f'    ProxyPassReverse "{ctx_path}" "{balancer}"',
        "",
        '    <Location "/balancer-manager">',
        "        SetHandler balancer-manager",
        f"        {require_manager(lb.manager_allow)}",
        "    </Location>",
        "</VirtualHost>",
        "",
    ]
    return "\n".join(lines)


_LISTEN = re.compile(r"^\s*Listen\s+(?:\S*:)?(\d+)(?:\s|$)", re.IGNORECASE)


def listened_ports(grep_output: str, own_file: str) -> set[int]:
    """Ports of unconditional `Listen` lines in `grep -H` output of Apache's config files,
    leaving out `own_file` (the site we write) and Listen lines inside <IfModule>."""
    depth: dict[str, int] = {}
    ports = set()
    for line in grep_output.splitlines():
        path, sep, text = line.partition(":")
        if not sep or path == own_file:
            continue
        stripped = text.strip().lower()
        if stripped.startswith("<ifmodule"):
            depth[path] = depth.get(path, 0) + 1
        elif stripped.startswith("</ifmodule"):
            depth[path] = max(0, depth.get(path, 0) - 1)
        elif not depth.get(path) and (m := _LISTEN.match(text)):
            ports.add(int(m.group(1)))
    return ports


def default_site_shadows(default_conf: bytes | None, port: int) -> bool:
    """Whether the enabled 000-default site has a catch-all vhost on our port (it would come first)."""
    if default_conf is None:
        return False
    text = default_conf.decode("utf-8", "replace")
    return bool(re.search(rf"<VirtualHost\s+[^>]*(\*|_default_):{port}\b", text))


def apache_running(ctx: StepContext) -> bool:
    return ctx.run(IS_RUNNING, quiet=True).ok


def enabled_modules(ctx: StepContext) -> set[str]:
    r = ctx.run(f"ls -1 {APACHE_DIR}/mods-enabled 2>/dev/null", quiet=True)
    return {name[:-5] for name in r.stdout.split() if name.endswith(".load")}


# -- load_balancer.server ---------------------------------------------------------------------------


@register
class LoadBalancerServer(ManagedStep):
    key = "load_balancer.server"
    title = "Load balancer: Apache httpd and its proxy modules"
    layer = "load_balancer"
    layer_of = staticmethod(load_balancer_of)
    hint = "Check the balancer node's package sources (apt-get install apache2) and the a2enmod output above."

    def probe(self, ctx):
        changes = []
        missing = [p for p in PACKAGES if not self._installed(ctx, p)]
        if missing:
            names = " ".join(missing)
            # Only when missing; apt-get update only when the package lists cannot serve the install.
            changes.append(Change(
                f"install {', '.join(missing)}",
                command=f"export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q {names} || "
                        f"{{ apt-get update -q && apt-get install -y -q {names}; }}",
                timeout=900,
            ))
        absent = [m for m in MODULES if m not in enabled_modules(ctx)]
        if absent:
            names = " ".join(absent)
            changes.append(Change(f"enable Apache modules {names}", command=f"a2enmod -q {names}"))
        return changes

    @staticmethod
    def _installed(ctx: StepContext, package: str) -> bool:
        r = ctx.run(f"dpkg-query -W -f='${{Status}}' {quote(package)} 2>/dev/null", quiet=True)
        return r.stdout.strip() == "install ok installed"

    def apply(self, ctx, changes):
        super().apply(ctx, changes)
        # New modules take effect only with a (graceful) restart; a stopped Apache starts with the site step.
        if apache_running(ctx):
            Change("reload Apache so that it loads the modules", command=f"{CONFIGTEST} && {{ {RELOAD}; }}",
                   timeout=60).apply(ctx)

    def verify(self, ctx):
        r = ctx.run(f"{LOCK_DIR}; apache2ctl -M", quiet=True, timeout=60)
        if not r.ok:
            raise StepFailed(f"apache2ctl -M failed: {(r.stderr or r.stdout).strip()[-300:]}")
        loaded = set(re.findall(r"^\s*(\w+)_module\b", r.stdout, re.MULTILINE))
        lacking = [m for m in MODULES if m not in loaded]
        if lacking:
            raise StepFailed(f"Apache does not load {', '.join(lacking)}; run a2enmod {' '.join(lacking)}.")
        ctx.log(f"Apache loads {', '.join(MODULES)}")


# -- load_balancer.site -----------------------------------------------------------------------------


@dataclass
class ActivateSite(Change):
    """The last change of the site step: configtest, then reload (or start)."""

    start: bool = False


@register
class LoadBalancerSite(Step):
    key = "load_balancer.site"
    title = "Load balancer: the Joget site (sticky sessions by jvmRoute)"
    layer = "load_balancer"
    hint = ("A failed configtest is shown above (the site changes were undone; Apache kept its configuration). "
            "HTTP 503 through the balancer: no app server answered on its HTTP port.")

    def applies(self, cluster) -> bool:
        return load_balancer_of(cluster) is not None

    def targets(self, cluster):
        lb = load_balancer_of(cluster)
        if lb is None:
            return []
        # An existing balancer (maybe hardware, no SSH) is only checked over HTTP, from the console.
        return [lb.node] if lb.mode == LayerMode.MANAGED else [None]

    # -- probe

    def probe(self, ctx):
        if ctx.node is None:
            return []
        lb = load_balancer_of(ctx.cluster)
        listen = lb.http_port not in self._other_listens(ctx, lb)
        members = list(ctx.cluster.app_servers())
        changes = [ctx.want_file(site_path(lb), render_site(ctx.cluster, lb, members, listen=listen),
                                 description=f"write the site {site_path(lb)}")]
        if not ctx.run(f"test -e {quote(enabled_path(lb))}", quiet=True).ok:
            changes.append(Change(f"enable the site {lb.site_name}", command=f"a2ensite -q {quote(lb.site_name)}"))
        default = ctx.read_file(f"{APACHE_DIR}/sites-enabled/000-default.conf")
        if lb.site_name != "000-default" and default_site_shadows(default, lb.http_port):
            changes.append(Change(f"disable the site 000-default (its vhost on port {lb.http_port} would answer "
                                  "instead)", command="a2dissite -q 000-default"))
        changes = [c for c in changes if c]
        running = apache_running(ctx)
        if changes or not running:
            verb = "reload" if running else "start"
            changes.append(ActivateSite(f"check the configuration (apache2ctl configtest) and {verb} Apache",
                                        start=not running))
        return changes

    @staticmethod
    def _other_listens(ctx: StepContext, lb: LoadBalancer) -> set[int]:
        files = f"{APACHE_DIR}/ports.conf {APACHE_DIR}/conf-enabled/*.conf {APACHE_DIR}/sites-enabled/*.conf"
        pattern = quote("^[[:space:]]*(Listen|</?IfModule)")
        r = ctx.run(f"grep -HiE {pattern} {files} 2>/dev/null", quiet=True)
        return listened_ports(r.stdout, enabled_path(lb))

    # -- apply: write, enable, configtest (restore on failure), reload

    def apply(self, ctx, changes):
        undo = []
        for change in changes:
            if isinstance(change, ActivateSite):
                self._activate(ctx, change, undo)
                continue
            ctx.log(f"→ {change.description}")
            if change.content is not None:
                old = ctx.read_file(change.path)
                ctx.write_file(change.path, change.content, mode=change.mode, owner=change.owner)
                undo.append(self._restore_file(change.path, old))
            if change.command:
                ctx.run(change.command, timeout=change.timeout, check=True)
                undo.append(self._inverse(change.command))

    def _activate(self, ctx: StepContext, change: ActivateSite, undo: list) -> None:
        ctx.log(f"→ {change.description}")
        test = ctx.run(CONFIGTEST, timeout=60)
        if not test.ok:
            for action in reversed(undo):
                action(ctx)
            tail = " / ".join((test.stderr or test.stdout).strip().splitlines()[-4:])
            raise StepFailed(f"apache2ctl configtest failed: {tail}. Apache still runs its previous configuration; "
                             "the site changes were undone.", exit_code=test.exit_code)
        ctx.run(START if change.start else RELOAD, timeout=60, check=True)

    @staticmethod
    def _restore_file(path: str, old: bytes | None):
        def restore(ctx: StepContext) -> None:
            ctx.log(f"← restore {path}")
            if old is None:
                ctx.run(f"rm -f {quote(path)}")
            else:
                ctx.write_file(path, old, backup=False)
        return restore

    @staticmethod
    def _inverse(command: str):
        # a2ensite <-> a2dissite: the only commands this step runs before the configtest.
        opposite = command.replace("a2ensite", "a2dissite") if "a2ensite" in command else \
            command.replace("a2dissite", "a2ensite")

        def inverse(ctx: StepContext) -> None:
            ctx.log(f"← {opposite}")
            ctx.run(opposite)
        return inverse

    # -- verify

    def verify(self, ctx):
        lb = load_balancer_of(ctx.cluster)
        if ctx.node is None:
            self._verify_from_console(ctx, lb)
            return
        if not apache_running(ctx):
            raise StepFailed(f"Apache is not running on {ctx.node.name} (no live process in {PID_FILE}).")
        port = lb.http_port
        code = self._curl_code(ctx, f"http://127.0.0.1:{port}/")
        if code == "000":
            raise StepFailed(f"Apache does not answer on 127.0.0.1:{port} (curl on {ctx.node.name}).")
        ctx.log(f"GET / on the balancer itself: HTTP {code}")
        url = f"http://127.0.0.1:{port}{ctx.cluster.context_path}{ANON_PATH}"
        code = self._curl_code(ctx, url)
        if code != "200":
            raise StepFailed(f"{url} through the balancer gave HTTP {code}: no app server answered (503 or 502), "
                             "or Joget is not deployed at that path.")
        ctx.log(f"GET {ctx.cluster.context_path}{ANON_PATH} through the balancer: HTTP 200")
        self._verify_manager(ctx, lb)

    @staticmethod
    def _curl_code(ctx: StepContext, url: str, source: str = "") -> str:
        iface = f"--interface {quote(source)} " if source else ""
        r = ctx.run(f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 10 {iface}{quote(url)}", quiet=True,
                    timeout=30)
        return r.stdout.strip()[-3:] or "000"

    def _verify_manager(self, ctx: StepContext, lb: LoadBalancer) -> None:
        """balancer-manager answers the allowed address and refuses another one."""
        node = ctx.node
        path = "/balancer-manager"
        if not lb.manager_allow:
            code = self._curl_code(ctx, f"http://127.0.0.1:{lb.http_port}{path}")
            if code != "200":
                raise StepFailed(f"{path} gave HTTP {code} on 127.0.0.1 of {node.name} (the only allowed address).")
            ctx.log(f"{path} answers on 127.0.0.1 (the only allowed address)")
        else:
            status = manager_status_from(node.address, lb.http_port, lb.manager_allow)
            if status is None:
                ctx.log(f"{path}: not checked from {lb.manager_allow} (not an address of this console)")
            elif status != 200:
                raise StepFailed(f"{path} gave HTTP {status} to the allowed address {lb.manager_allow}.")
            else:
                ctx.log(f"{path} answers the allowed address {lb.manager_allow}")
        if node.address not in (lb.manager_allow, "127.0.0.1"):
            code = self._curl_code(ctx, f"http://{url_host(node.address)}:{lb.http_port}{path}", source=node.address)
            if code != "403":
                raise StepFailed(f"{path} gave HTTP {code} to {node.address}, which is not allowed: expected 403.")
            ctx.log(f"{path} refuses {node.address} (403)")

    @staticmethod
    def _verify_from_console(ctx: StepContext, lb: LoadBalancer) -> None:
        path = f"{ctx.cluster.context_path}{ANON_PATH}"
        reply = web.get(lb.node.address, lb.http_port, path, timeout=HTTP_TIMEOUT)
        if reply.status is None:
            raise StepFailed(f"The balancer {lb.node.address}:{lb.http_port} does not answer: {reply.error}.")
        if reply.status != 200:
            raise StepFailed(f"{path} through the existing balancer gave HTTP {reply.status}, expected 200.")
        ctx.log(f"GET {path} through the existing balancer {lb.node.address}:{lb.http_port}: HTTP 200")


def manager_status_from(host: str, port: int, source: str) -> int | None:
    """HTTP status of balancer-manager asked from `source`; None when `source` is not one of ours."""
    # Bound to `source` before connecting: an address that is not the console's fails at once.
    try:
        with socket.socket(socket.AF_INET6 if ":" in source else socket.AF_INET) as probe:
            probe.bind((source, 0))
    except OSError:
        return None
    reply = web.get(host, port, "/balancer-manager", timeout=HTTP_TIMEOUT, source=source)
    if reply.status is None:
        raise StepFailed(f"balancer-manager on {host}:{port} did not answer from {source}: {reply.error}.")
    return reply.status
