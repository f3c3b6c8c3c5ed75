"""The app servers as members of the load balancer: their state read from, and set through, Apache's
balancer-manager, as the console's own address (the page is locked to it) or, when it is open to loopback
only, with curl on the balancer node.

Apache 2.4's balancer-manager changes a member only by POST, with `b` (the balancer's name without
`balancer://`), `w` (the worker URL as listed), the balancer's `nonce` (in the page's own links) and the
status flags `w_status_D` (disabled) and `w_status_N` (drain), each 0 or 1; a flag not sent is not changed.
A runtime change lasts until Apache reloads: the site file carries the node's persisted state too
(`status=+D` / `status=+N`, load_balancer.render_site).

Step: `members.apply` (the cluster's kept states: at runtime first, then in the balancer's site through
load_balancer.site's own probe and apply, found in the registry).
"""

from __future__ import annotations

import dataclasses
import re
import socket
import time
from dataclasses import dataclass

from nodes import web
from nodes.health.balancer_manager import parse_balancer_manager
from nodes.models import BalancerState, LayerMode, LoadBalancer
from nodes.ssh import quote

from . import get_step, register
from .base import Change, Step, StepContext, StepFailed

PATH = "/balancer-manager"
TIMEOUT = 10.0
# Apache's status word for each persisted state, and the flags that set it.
FLAGS = {BalancerState.ENABLED: {"w_status_D": "0", "w_status_N": "0"},
         BalancerState.DISABLED: {"w_status_D": "1", "w_status_N": "0"},
         BalancerState.DRAIN: {"w_status_D": "0", "w_status_N": "1"}}


@dataclass
class Member:
    route: str
    url: str
    status: str  # Apache's words, e.g. "Init Ok", "Init Dis Ok", "Init Drn Ok"
    busy: int | None = None  # requests in flight
    elected: int | None = None

    @property
    def state(self) -> str:
        words = set(self.status.split())
        if "Dis" in words:
            return BalancerState.DISABLED
        if "Drn" in words:
            return BalancerState.DRAIN
        return BalancerState.ENABLED

    @property
    def serving(self) -> bool:
        """Apache sends it new requests: enabled and not in error."""
        return self.state == BalancerState.ENABLED and "Err" not in self.status.split()


def status_flag(state: str) -> str:
    """The BalancerMember parameter of a persisted state ("" when enabled): httpd 2.4's `status=+D`/`+N`."""
    return {BalancerState.DISABLED: "status=+D", BalancerState.DRAIN: "status=+N"}.get(state, "")


def balancer_name(cluster) -> str:
    return cluster.name  # load_balancer.render_site names it balancer://<cluster name>


def nonce_of(page: str, balancer: str) -> str:
    """The balancer's nonce, from the links the manager page draws for it."""
    for href in re.findall(r'href="([^"]*)"', page):
        href = href.replace("&amp;", "&")
        if re.search(rf"[?&]b={re.escape(balancer)}(&|$)", href) and (m := re.search(r"[?&]nonce=([\w-]+)", href)):
            return m.group(1)
    return ""


def parse_members(page: str) -> dict[str, Member]:
    return {route: Member(route=route, url=m["url"], status=m["status"], busy=m.get("busy"), elected=m.get("elected"))
            for route, m in parse_balancer_manager(page).items()}


def _ours(address: str) -> bool:
    """Whether `address` is one of this console's (binding to it works)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True


class Manager:
    """balancer-manager of a cluster's balancer, asked from the console (or from the balancer node itself)."""

    def __init__(self, cluster, ctx: StepContext | None = None):
        lb: LoadBalancer | None = cluster.layer("load_balancer")
        if lb is None or not lb.node_id:
            raise StepFailed(f"Cluster {cluster.name} has no load balancer: its members cannot be changed.")
        self.cluster, self.lb, self.ctx = cluster, lb, ctx
        self.balancer = balancer_name(cluster)
        if lb.manager_allow and _ours(lb.manager_allow):
            self.via = "console"
        elif not lb.manager_allow and lb.mode == LayerMode.MANAGED and ctx is not None:
            self.via = "ssh"  # open to loopback only: ask it on the balancer node
        else:
            raise StepFailed(f"balancer-manager on {lb.node.address} answers only {lb.manager_allow or '127.0.0.1'}, "
                             "which is not an address of this console: set the load balancer's manager address to "
                             "the console's.")

    def _request(self, form: dict | None = None) -> tuple[int | None, str]:
        lb = self.lb
        if self.via == "console":
            url = f"http://{web.url_host(lb.node.address)}:{lb.http_port}{PATH}"
            if form is None:
                reply = web.get(lb.node.address, lb.http_port, PATH, timeout=TIMEOUT, source=lb.manager_allow)
            else:
                reply = web.post_form(lb.node.address, lb.http_port, PATH, form, timeout=TIMEOUT,
                                      source=lb.manager_allow, headers={"Referer": url})
            if reply.status is None:
                raise StepFailed(f"balancer-manager did not answer: {reply.error}")
            return reply.status, reply.text
        url = f"http://127.0.0.1:{lb.http_port}{PATH}"
        data = "".join(f" --data-urlencode {quote(f'{k}={v}')}" for k, v in (form or {}).items())
        conn = self.ctx.connect(lb.node)
        r = self.ctx.run(f"curl -sS -m {int(TIMEOUT)} -e {quote(url)}{data} -w '\\n%{{http_code}}' {quote(url)}",
                         conn=conn, quiet=True, timeout=TIMEOUT + 30)
        body, _, code = r.stdout.rpartition("\n")
        return (int(code) if code.strip().isdigit() else None), body

    def page(self) -> str:
        status, text = self._request()
        if status != 200:
            raise StepFailed(f"balancer-manager on {self.lb.node.address} answered HTTP {status}.")
        return text

    def members(self) -> dict[str, Member]:
        found = parse_members(self.page())
        if not found:
            raise StepFailed("balancer-manager answered without a member table.")
        return found

    def member(self, node) -> Member:
        found = self.members().get(node.jvm_route)
        if found is None:
            raise StepFailed(f"{node.name} (route {node.jvm_route}) is not a member of balancer://{self.balancer}: "
                             "deploy the load balancer site first.")
        return found

    def set_state(self, node, state: str) -> Member:
        """Set the member's state at runtime, and read it back."""
        page = self.page()
        member = parse_members(page).get(node.jvm_route)
        nonce = nonce_of(page, self.balancer)
        if member is None or not nonce:
            raise StepFailed(f"{node.name}: no member with route {node.jvm_route} (or no nonce) on balancer-manager.")
        if member.state == state:
            return member
        status, _ = self._request({"b": self.balancer, "w": member.url, "nonce": nonce, **FLAGS[state]})
        if status not in (200, 302):
            raise StepFailed(f"balancer-manager refused the change of {node.name} to {state}: HTTP {status}.")
        now = self.member(node)
        if now.state != state:
            raise StepFailed(f"{node.name} is still {now.status!r} on balancer-manager after setting it {state}.")
        return now

    def wait_idle(self, node, *, timeout: float, log) -> int:
        """Wait until the member has no request in flight; the seconds waited."""
        t0 = time.monotonic()
        while True:
            member = self.member(node)
            if not member.busy:
                return round(time.monotonic() - t0)
            if time.monotonic() - t0 > timeout:
                log(f"{node.name} still has {member.busy} request(s) in flight after {int(timeout)} s: going on")
                return int(timeout)
            time.sleep(0.25)


# -- the step ---------------------------------------------------------------------------------------


class SetMember(Change):
    def apply(self, ctx, conn=None):
        ctx.log(f"→ {self.description}")
        manager = Manager(ctx.cluster, ctx)
        node = ctx.cluster.app_servers().get(name=self.path)
        manager.set_state(node, node.balancer_state)


class KeepInSite(Change):
    """The balancer's site rewritten with the kept states (load_balancer.site's own changes, through the
    registry), so that a reload or a redeploy keeps them."""

    planned: list | None = None
    site_ctx: StepContext | None = None

    def apply(self, ctx, conn=None):
        ctx.log(f"→ {self.description}")
        site = get_step("load_balancer.site")
        site.apply(self.site_ctx, self.planned)
        site.verify(self.site_ctx)


def site_context(ctx: StepContext) -> StepContext | None:
    """The context of load_balancer.site on the balancer node, when the console manages that node."""
    lb = ctx.cluster.layer("load_balancer")
    if lb is None or lb.mode != LayerMode.MANAGED or not lb.node_id:
        return None
    return dataclasses.replace(ctx, node=lb.node, conn=ctx.connect(lb.node), notes=[])


@register
class ApplyMembers(Step):
    key = "members.apply"
    title = "Load balancer: each app server's member state (enabled, disabled, drain) at runtime"
    layer = "load_balancer"
    in_default_plan = False  # its own operation (`operate CLUSTER disable NODE`)
    hint = "The console must reach balancer-manager from its own address (the load balancer's manager address)."

    def probe(self, ctx):
        found = Manager(ctx.cluster, ctx).members()
        changes = []
        for node in ctx.cluster.app_servers():
            member = found.get(node.jvm_route)
            if member is not None and member.state != node.balancer_state:
                changes.append(SetMember(f"set {node.name} {node.balancer_state} (Apache has it {member.status})",
                                         path=node.name))
        site_ctx = site_context(ctx)
        if site_ctx is None:
            ctx.log("The balancer is not managed by the console: the states are set at runtime only.")
        elif planned := get_step("load_balancer.site").probe(site_ctx):
            keep = KeepInSite("keep the states in the balancer's site: " + "; ".join(c.description for c in planned),
                              diff="\n".join(c.diff for c in planned if c.diff))
            keep.planned, keep.site_ctx = planned, site_ctx
            changes.append(keep)
        return changes

    def verify(self, ctx):
        found = Manager(ctx.cluster, ctx).members()
        for node in ctx.cluster.app_servers():
            member = found.get(node.jvm_route)
            if member is None:
                raise StepFailed(f"{node.name} is not a member of the balancer: deploy the load balancer site.")
            if member.state != node.balancer_state:
                raise StepFailed(f"{node.name} is {member.status!r} on balancer-manager, not {node.balancer_state}.")
            ctx.note(f"{node.name}: {member.status} (busy {member.busy})")
