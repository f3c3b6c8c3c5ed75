"""Step 9 of the guide: the post-deployment test, through the load balancer.

A checklist, run from the console with nodes.web's GET (the login POST with http.client), as a browser would reach the
balancer, through its public address and port; no curl needed on the balancer, and the session
cookie is sent explicitly): /jw answers; a session sticks to one node; with that node's Tomcat
stopped the same session goes on on another node (replication carried it); the stopped node is
started again and answers. The Tomcat control runs on the app server over SSH.

The probe plans nothing and every check runs in `verify` (which runs on every deployment, even
when nothing changed): a healthy cluster reports "ok", a dry run shows nothing for this step
(its checks stop a Tomcat, which a dry run must not do), and a second full run stays all "ok".
"""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.parse
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import NoReturn

from nodes import web
from nodes.web import ANON_PATH, SESSION_PATH, url_host

from . import register, tomcat_tools
from .base import Change, Step, StepContext, StepFailed, quote
from .load_balancer import HTTP_TIMEOUT, MEMBER_RETRY, load_balancer_of
from .tomcat_tools import read_catalina_out

SESSION_LINE = re.compile(r"^node=(\S+) count=(\d+)")
STICKY_REQUESTS = 5
REPLICATION_SETTLE = 2.0  # seconds between the session's last request and stopping its node
RETRY_SETTLE = 6.0  # the same, for the one second try after the other node answered with an older session
FAILOVER_REQUESTS = 3
STOP_TIMEOUT = 60.0
REJOIN_TIMEOUT = 300.0  # real Joget takes minutes to start; the stand-in a few seconds
# The balancer takes a restarted member back only after its retry interval (ours: MEMBER_RETRY;
# an existing balancer's may be httpd's default 60 s).
ROUTED_TIMEOUT = max(60, MEMBER_RETRY) + 15.0
POLL = 2.0
# A made-up session id: the balancer routes it by its ".<jvmRoute>" suffix, the node starts a new session.
PROBE_SESSION = "JCCPOSTTEST"


# -- the checklist ----------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool | None  # None: not applicable here (said why in `seen`)
    seen: str
    late: bool = False  # failed because the other node held an older copy of the session

    @property
    def line(self) -> str:
        mark = {True: "✓", False: "✗", None: "–"}[self.ok]
        return f"{mark} {self.name}: {self.seen}"

    def as_change(self) -> Change:
        return Change(self.line)


class Checklist(list):
    """Checks as they are made: each is logged at once; the first failure stops the test."""

    def __init__(self, ctx: StepContext):
        super().__init__()
        self.ctx = ctx

    def add(self, *checks: Check) -> Check:
        """Log every check given, then stop at the first that failed; returns the last one."""
        for check in checks:
            self.append(check)
            self.ctx.note(check.line)
        failed = next((c for c in checks if c.ok is False), None)
        if failed:
            raise StepFailed(f"post-deployment test: {failed.name} failed: {failed.seen}")
        return checks[-1]

    def fail(self, name: str, seen: str) -> NoReturn:
        self.add(Check(name, False, seen))
        raise AssertionError("unreachable: add() raises on a failed check")

    def changes(self) -> list[Change]:
        return [c.as_change() for c in self]


# -- HTTP through the balancer, from the console ----------------------------------------------------


@dataclass
class Reply:
    status: int
    body: str
    location: str = ""
    session: str = ""  # the session cookie the reply set, if any


class BalancerClient:
    def __init__(self, host: str, port: int, context_path: str, cookie_name: str):
        self.host, self.port, self.context_path, self.cookie_name = host, port, context_path, cookie_name

    def url(self, path: str) -> str:
        return f"http://{url_host(self.host)}:{self.port}{self.context_path}{path}"

    def request(self, method: str, path: str, *, session: str = "", form: dict | None = None) -> Reply:
        """One request through the balancer; OSError when nothing answers."""
        headers = {"Cookie": f"{self.cookie_name}={session}"} if session else {}
        if method == "GET":
            got = web.get(self.host, self.port, f"{self.context_path}{path}", timeout=HTTP_TIMEOUT, headers=headers,
                          limit=64 * 1024)
            if got.status is None:
                raise OSError(got.error)
            cookies = [v for k, v in got.headers if k.lower() == "set-cookie"]
            return Reply(got.status, got.text, got.header("Location"), session_from(cookies, self.cookie_name))
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=HTTP_TIMEOUT)
        try:
            conn.request(method, f"{self.context_path}{path}", body=body, headers=headers)
            resp = conn.getresponse()
            text = resp.read(64 * 1024).decode("utf-8", "replace")
            return Reply(resp.status, text, resp.getheader("Location", ""),
                         session_from(resp.headers.get_all("Set-Cookie") or [], self.cookie_name))
        finally:
            conn.close()


def session_from(set_cookies: list[str], name: str) -> str:
    for header in set_cookies:
        jar = SimpleCookie()
        try:
            jar.load(header)
        except CookieError:
            continue
        if name in jar:
            return jar[name].value
    return ""


def route_of(session_id: str) -> str:
    """Tomcat appends `.<jvmRoute>` to session ids; mod_proxy_balancer routes on it."""
    return session_id.rsplit(".", 1)[1] if "." in session_id else ""


def brief(body: str) -> str:
    """An answer's gist for the log: an HTML page's title, else its first line."""
    m = re.search(r"<title>(.*?)</title>", body, re.IGNORECASE | re.DOTALL)
    text = m.group(1) if m else (body.strip().splitlines() or [""])[0]
    return " ".join(text.split())[:120]


def count_range(counts: list[int]) -> str:
    return f"{counts[0]}-{counts[-1]}" if counts == list(range(counts[0], counts[0] + len(counts))) else \
        ",".join(map(str, counts))


# -- following one session --------------------------------------------------------------------------


class StandinSession:
    """The stand-in's /jw/testbed/session: `node=<jvmRoute> count=<n>`, n counting this session's requests."""

    kind = "stand-in session counter"

    def __init__(self, client: BalancerClient):
        self.client, self.id = client, ""

    def hit(self) -> tuple[str, int | None, str]:
        """(node, count, what was seen) of one request in this session."""
        reply = self.client.request("GET", SESSION_PATH, session=self.id)
        if reply.session:
            self.id = reply.session
        m = SESSION_LINE.match(reply.body.strip()) if reply.status == 200 else None
        if not m:
            return "", None, f"HTTP {reply.status} {brief(reply.body)}"
        return m.group(1), int(m.group(2)), reply.body.strip()

    def answering_node(self, route: str) -> str:
        """The node that answers a session routed to `route` (else "")."""
        reply = self.client.request("GET", SESSION_PATH, session=f"{PROBE_SESSION}.{route}")
        m = SESSION_LINE.match(reply.body.strip()) if reply.status == 200 else None
        return m.group(1) if m else ""


class LoginSession:
    """Real Joget: log in as the admin; the session is alive while currentUsername answers that user.
    Which node answered is not visible, only the route the session id was issued with."""

    kind = "Joget login"

    def __init__(self, client: BalancerClient, user: str, password: str):
        self.client, self.user, self.password, self.id = client, user, password, ""

    def login(self) -> str:
        """The session id after a successful login, else raise StepFailed-worthy text via ValueError."""
        reply = self.client.request("POST", "/j_spring_security_check",
                                    form={"j_username": self.user, "j_password": self.password})
        if reply.status not in (301, 302, 303) or "login_error" in reply.location or not reply.session:
            raise ValueError(f"login as {self.user} through the balancer failed (HTTP {reply.status}, "
                             f"Location {reply.location or 'none'})")
        self.id = reply.session
        return self.id

    def hit(self) -> tuple[str, int | None, str]:
        reply = self.client.request("GET", ANON_PATH, session=self.id)
        if reply.session:
            self.id = reply.session
        try:
            user = json.loads(reply.body).get("username", "") if reply.status == 200 else ""
        except (ValueError, AttributeError):
            user = ""
        node = route_of(self.id) if user == self.user else ""
        return node, None, f"HTTP {reply.status} username={user or '?'}"

    def answering_node(self, route: str) -> str:
        # The login page starts a session on the node that answers; Tomcat names it with its jvmRoute.
        return route_of(self.client.request("GET", "/web/login", session=f"{PROBE_SESSION}.{route}").session)


# -- Tomcat control on an app server ----------------------------------------------------------------


def tomcat_control(ctx: StepContext) -> dict:
    """is_running/stop/start/http_check, each (ctx, node), from tomcat_tools; http_check is True when Joget
    answers on the node itself. On a cluster that serves users, the stopped node is first taken out of the
    balancer and put back once it has rejoined (deployments/rolling.py): the test must not fail their requests."""
    from deployments import rolling

    anon = f"{ctx.cluster.context_path}{ANON_PATH}"
    control = {
        "is_running": lambda c, node: tomcat_tools.running_pid(c, node) is not None,
        "stop": tomcat_tools.stop,
        "start": tomcat_tools.start,
        "http_check": lambda c, node: tomcat_tools.http_check(c, node, anon) == 200,
    }
    if ctx.cluster.pk and not ctx.dry_run and rolling.serving(ctx.cluster) and rolling.can_roll(ctx.cluster):
        from .members import Manager

        manager = Manager(ctx.cluster, ctx)

        def start(c, node):
            # Its own rejoin check follows (through the balancer); replication.members reads catalina.out.
            rolling.start_and_rejoin(c, node, rejoin=False)
            rolling.put_back(c, node, manager, note=False)

        control.update(stop=lambda c, node: rolling.take_out(c, node, manager), start=start)
    return control


# -- the step ---------------------------------------------------------------------------------------


@register
class PostDeploymentTest(Step):
    key = "post_test"
    checks_only = True
    title = "Post-deployment test through the balancer"
    layer = "post_test"
    hint = ("Read the checklist in the log: the first ✗ says what failed. Sticky: the session cookie's "
            ".jvmRoute must equal a BalancerMember route. Failover: session replication (replication.members).")

    def applies(self, cluster) -> bool:
        return load_balancer_of(cluster) is not None and cluster.app_servers().exists()

    def targets(self, cluster):
        return [None] if self.applies(cluster) else []  # also when named explicitly in a deployment

    def probe(self, ctx):
        return []  # see the module docstring: everything happens in verify

    def verify(self, ctx):
        run_checks(ctx)


def run_checks(ctx: StepContext) -> Checklist:
    lb = load_balancer_of(ctx.cluster)
    client = BalancerClient(lb.node.address, lb.http_port, ctx.cluster.context_path, lb.sticky_cookie)
    checks = Checklist(ctx)
    try:
        checks.add(check_anonymous(client))
        session = open_session(ctx, client, checks)
        check, route = check_sticky(session)
        checks.add(check)
        run_failover(ctx, checks, session, route)
    except OSError as exc:
        checks.fail("balancer", f"{client.url('')} did not answer: {exc}")
    return checks


def check_anonymous(client: BalancerClient) -> Check:
    reply = client.request("GET", ANON_PATH)
    try:
        user = json.loads(reply.body).get("username") if reply.status == 200 else None
    except (ValueError, AttributeError):
        user = None
    seen = f"GET {client.url(ANON_PATH)} → HTTP {reply.status} {reply.body.strip()[:80]}"
    return Check(f"{client.context_path} answers", user == "roleAnonymous", seen)


def open_session(ctx: StepContext, client: BalancerClient, checks: Checklist):
    """The stand-in's counter where there is one, else a Joget login as the cluster's admin."""
    probe = client.request("GET", SESSION_PATH)
    if probe.status == 200 and SESSION_LINE.match(probe.body.strip()):
        return StandinSession(client)
    cluster = ctx.cluster
    if not cluster.joget_admin_password:
        checks.fail("session", f"{client.url(SESSION_PATH)} gave HTTP {probe.status} (real Joget) and the cluster "
                               "has no Joget admin password to log in with: set it")
    session = LoginSession(client, cluster.joget_admin_user, cluster.joget_admin_password)
    try:
        sid = session.login()
    except ValueError as exc:
        checks.fail("session", str(exc))
    ctx.log(f"logged in as {cluster.joget_admin_user}; session route {route_of(sid) or '(none)'}")
    return session


def check_sticky(session) -> tuple[Check, str]:
    """(the check, the node the session is on)."""
    hits = [session.hit() for _ in range(STICKY_REQUESTS)]
    nodes = [n for n, _, _ in hits]
    counts = [c for _, c, _ in hits]
    name = "sticky"
    if not all(nodes):
        bad = next(seen for n, _, seen in hits if not n)
        return Check(name, False, f"a request in the session failed: {bad}"), ""
    if len(set(nodes)) != 1:
        return Check(name, False, f"{STICKY_REQUESTS} requests went to {' '.join(nodes)} (same session cookie)"), ""
    if counts[0] is not None and counts != list(range(1, STICKY_REQUESTS + 1)):
        return Check(name, False, f"{STICKY_REQUESTS} requests on {nodes[0]}, counts {count_range(counts)} "
                                  "(the session was not kept)"), ""
    what = f"counts {count_range(counts)}" if counts[0] is not None else f"as {session.user} ({session.kind})"
    return Check(name, True, f"{STICKY_REQUESTS} requests on {nodes[0]}, {what}"), nodes[0]


def run_failover(ctx: StepContext, checks: Checklist, session, route: str) -> None:
    servers = list(ctx.cluster.app_servers())
    holder = holder_of(checks, servers, route)
    others = [n for n in servers if n is not holder]
    if not others:
        checks.add(Check("failover", None, "one app server only: nothing to fail over to"))
        return
    tomcat = tomcat_control(ctx)
    down = [n.jvm_route for n in others if not tomcat["http_check"](ctx, n)]
    if down:
        checks.fail("failover", f"not tried: {', '.join(down)} does not answer directly, so stopping {route} "
                                "could leave no server")
    # A member restarted moments ago (e.g. by the previous run of this test) may still be set aside by the balancer.
    unrouted = [n.jvm_route for n in others if wait_routed(session, n.jvm_route, ROUTED_TIMEOUT) is None]
    if unrouted:
        checks.fail("failover", f"not tried: the balancer does not send {', '.join(unrouted)}'s sessions there "
                                f"(waited {ROUTED_TIMEOUT:.0f} s)")
    failover, rejoin = failover_round(ctx, tomcat, session, holder, REPLICATION_SETTLE)
    if failover.late and rejoin.ok:
        # The other node had the session, only older: replication was late or a change was lost (a busy
        # JVM, a membership heartbeat missed). Worth one more try with a fresh session and more time; the
        # first finding stays in the log and in the check's line, so a flaky replication is still seen.
        ctx.note(f"✗ failover, first try: {failover.seen}")
        membership_lines(ctx, servers)
        ctx.log(f"trying failover once more with a new session, {RETRY_SETTLE:.0f} s for replication")
        checks.add(rejoin)
        session = open_session(ctx, session.client, checks)
        check, route = check_sticky(session)
        checks.add(check)
        first = failover.seen
        failover, rejoin = failover_round(ctx, tomcat, session, holder_of(checks, servers, route), RETRY_SETTLE)
        failover.seen += f" (second try; the first: {first})"
        if failover.ok is False:
            membership_lines(ctx, servers)
    checks.add(failover, rejoin)  # both seen in the log, whichever failed


def holder_of(checks: Checklist, servers: list, route: str):
    holder = next((n for n in servers if n.jvm_route == route), None)
    if holder is None:
        checks.fail("failover", f"the session is on {route!r}, which is no app server's jvmRoute "
                                f"({', '.join(n.jvm_route for n in servers)})")
    return holder


def failover_round(ctx: StepContext, tomcat: dict, session, holder, settle: float) -> tuple[Check, Check]:
    """Stop the session's node, follow the session, start the node again: (failover, rejoin)."""
    route = holder.jvm_route
    # The cluster replicates asynchronously (channelSendOptions="8", as in the guide): the session's last
    # change reaches the other nodes a moment later. A node that fails loses at most that moment; the
    # test gives replication that moment, so it checks failover rather than the race.
    ctx.log(f"waiting {settle:.0f} s for the session's last change to replicate")
    time.sleep(settle)
    ctx.log(f"stopping Tomcat on {holder.name} ({route}) for the failover check")
    try:
        tomcat["stop"](ctx, holder)
    except StepFailed as exc:
        failover = Check("failover", False, f"could not stop {route}: {exc}")
    else:
        try:
            failover = check_failover(session, route)
        except OSError as exc:
            failover = Check("failover", False, f"{route} stopped; the balancer did not answer: {exc}")
    finally:
        # Always: the test must not leave a node down, whatever happened above.
        rejoin = restart(ctx, tomcat, holder, session)
    return failover, rejoin


def membership_lines(ctx: StepContext, servers: list) -> None:
    """Each app server's recent cluster lines from catalina.out (members added or gone, failed sends)."""
    pattern = "member|unable to send|replicat|sender|faileddetector|tcpfailuredetector"
    for node in servers:
        ctx.run(read_catalina_out(node, f'tail -n 400 -- "$1" 2>/dev/null | grep -iE {quote(pattern)} | tail -n 12'),
                conn=ctx.connect(node), timeout=30)


def check_failover(session, stopped: str) -> Check:
    hits = [session.hit() for _ in range(FAILOVER_REQUESTS)]
    nodes = [n for n, _, _ in hits]
    counts = [c for _, c, _ in hits]
    name = "failover"
    if not all(nodes):
        bad = next(seen for n, _, seen in hits if not n)
        return Check(name, False, f"{stopped} stopped; the session's next request failed: {bad}")
    if isinstance(session, LoginSession):
        return Check(name, True, f"{stopped} stopped; the session is still logged in as {session.user} "
                                 f"({FAILOVER_REQUESTS} requests)")
    if stopped in nodes:
        return Check(name, False, f"{stopped} stopped but still answered ({' '.join(nodes)}): was it stopped?")
    expected = list(range(STICKY_REQUESTS + 1, STICKY_REQUESTS + 1 + FAILOVER_REQUESTS))
    if counts != expected:
        return Check(name, False, f"{stopped} stopped; {' '.join(sorted(set(nodes)))} answered with counts "
                                  f"{count_range(counts)}, expected {count_range(expected)}: the session was not "
                                  "replicated", late=counts[0] > 1)
    return Check(name, True, f"{stopped} stopped; the session went on on {' '.join(sorted(set(nodes)))}, "
                             f"counts {count_range(counts)}")


def restart(ctx: StepContext, tomcat: dict, node, session) -> Check:
    name = "rejoin"
    t0 = time.monotonic()
    try:
        if not tomcat["is_running"](ctx, node):
            tomcat["start"](ctx, node)
    except StepFailed as exc:
        return Check(name, False, f"could not start {node.jvm_route} again: {exc}")
    while not tomcat["http_check"](ctx, node):
        if time.monotonic() - t0 > REJOIN_TIMEOUT:
            return Check(name, False, f"{node.jvm_route} started again but does not answer directly after "
                                      f"{REJOIN_TIMEOUT:.0f} s: see its catalina.out")
        time.sleep(POLL)
    direct = time.monotonic() - t0
    routed = wait_routed(session, node.jvm_route, ROUTED_TIMEOUT)
    if routed is None:
        return Check(name, False, f"{node.jvm_route} answers directly after {direct:.1f} s, but the balancer did not "
                                  f"send its sessions to it within {ROUTED_TIMEOUT:.0f} s")
    return Check(name, True, f"{node.jvm_route} started again: answers directly after {direct:.1f} s, "
                             f"through the balancer after {direct + routed:.1f} s")


def wait_routed(session, route: str, timeout: float) -> float | None:
    """Seconds until the balancer sends a session of `route` to that node; None if it did not within `timeout`."""
    t0 = time.monotonic()
    while True:
        try:
            if session.answering_node(route) == route:
                return time.monotonic() - t0
        except OSError:
            pass
        if time.monotonic() - t0 > timeout:
            return None
        time.sleep(1.0)
