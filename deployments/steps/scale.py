"""Scale out and in: the steps an app server's addition or removal runs besides the plan's own (which run on the
new node alone). deployments/scale.py plans them (their nodes and waves) and starts them.

Addition: the node's own steps → `scale.members` (with static membership, every other app server's member list
gains the node, rolled one at a time) → `scale.add_member` (the balancer's site gains the member, graceful reload)
→ `scale.license` (the node's system key read; it needs a license).
Removal: `scale.leave` (out of the balancer, in-flight requests and replication settled, Tomcat stopped) →
`scale.drop_member` (the member removed, graceful reload) → `scale.members` (member lists rolled) →
`scale.finish` (the node leaves the cluster, its license released).
"""

from __future__ import annotations

from django.utils import timezone

from nodes import audit
from nodes.models import AuditEvent, Node

from . import get_step, register, tomcat_tools
from .base import AppServerStep, Change, Step, StepFailed
from .load_balancer import LoadBalancerSite


def subject(ctx) -> Node:
    """The node the operation adds or removes (also once it is leaving, which app_servers() no longer lists)."""
    name = (ctx.deployment.options or {}).get("node", "") if ctx.deployment else ""
    node = Node.all_objects.filter(cluster=ctx.cluster, name=name).order_by("-pk").first()
    if node is None:
        raise StepFailed(f"No node {name!r} in cluster {ctx.cluster.name}.")
    return node


class RollMembers(Change):
    """The node's static member list rewritten while it is out of the balancer and stopped (rolling.roll_node)."""

    planned: list | None = None

    def apply(self, ctx, conn=None):
        from deployments import rolling

        ctx.log(f"→ {self.description}")

        def change():
            for c in self.planned or []:
                c.apply(ctx)
        rolling.roll_node(ctx, change)


@register
class Members(AppServerStep):
    key = "scale.members"
    title = "The other app servers' member lists (static membership: rolled one at a time)"
    layer = "scale"
    in_default_plan = False
    depends_on = ("joget.running", "scale.drop_member")
    hint = ("The node stays out of the balancer while the others serve. Fix the cause (the end of catalina.out is "
            "above), then Resume: the nodes already rolled are not restarted again.")

    def rolls(self, cluster) -> bool:
        return True

    def probe(self, ctx):
        if ctx.cluster.multicast:
            ctx.log("Multicast membership: the app servers find the node by themselves, nothing to change.")
            return []
        planned = get_step("replication.server_xml").probe(ctx)
        if not planned:
            return []
        change = RollMembers(f"roll {ctx.node.name}: its static member list becomes "
                             f"{', '.join(n.name for n in ctx.cluster.app_servers() if n.pk != ctx.node.pk)}",
                             diff="\n".join(c.diff for c in planned))
        change.planned = planned
        return [change]

    def verify(self, ctx):
        if tomcat_tools.running_pid(ctx) is None:
            raise StepFailed(f"Tomcat is not running on {ctx.node.name}.")
        get_step("replication.server_xml").verify(ctx)


class _Balancer(LoadBalancerSite):
    """The balancer's site written for the app servers as they are now (the graceful reload of load_balancer.site:
    requests in flight finish, sticky routes stay), then the node checked through it."""

    layer = "scale"
    in_default_plan = False
    title = ""

    def verify(self, ctx):
        super().verify(ctx)
        if ctx.node is None:
            return
        from deployments.steps.members import Manager

        routes = set(Manager(ctx.cluster, ctx).members())
        node = subject(ctx)
        wanted = node.removed_at is None and not node.leaving
        if (node.jvm_route in routes) != wanted:
            raise StepFailed(f"balancer-manager {'lacks' if wanted else 'still lists'} {node.name}'s member "
                             f"(route {node.jvm_route}).")
        if wanted and node.balancer_state == "enabled":
            from deployments import rolling

            ctx.note(f"✓ {rolling.check_through_balancer(ctx, node)}")


@register
class AddMember(_Balancer):
    key = "scale.add_member"
    title = "Load balancer: the new app server's member added (graceful reload)"
    depends_on = ("scale.members", "joget.running")


@register
class DropMember(_Balancer):
    key = "scale.drop_member"
    title = "Load balancer: the leaving app server's member removed (graceful reload)"
    depends_on = ("scale.leave",)


@register
class Leave(Step):
    key = "scale.leave"
    title = "The leaving app server: out of the balancer, requests and replication settled, Tomcat stopped"
    layer = "scale"
    in_default_plan = False
    hint = "Another app server must serve meanwhile: bring one back first, then Resume."

    def probe(self, ctx):
        if tomcat_tools.running_pid(ctx) is None:
            return []
        return [LeaveChange(f"take {ctx.node.name} out of the balancer and stop its Tomcat")]

    def verify(self, ctx):
        if tomcat_tools.running_pid(ctx) is not None:
            raise StepFailed(f"Tomcat still runs on {ctx.node.name}.")


class LeaveChange(Change):
    def apply(self, ctx, conn=None):
        from deployments import rolling
        from deployments.steps.members import Manager

        ctx.log(f"→ {self.description}")
        manager = Manager(ctx.cluster, ctx)
        if ctx.node.jvm_route in manager.members():
            rolling.take_out(ctx, ctx.node, manager)
        else:
            ctx.log(f"{ctx.node.name} is no member of the balancer: stop Tomcat")
            tomcat_tools.stop(ctx, ctx.node)


@register
class Finish(Step):
    key = "scale.finish"
    title = "The app server leaves the cluster (kept in the deployment history, its license released)"
    layer = "scale"
    in_default_plan = False
    depends_on = ("scale.members", "scale.drop_member")

    def probe(self, ctx):
        node = subject(ctx)
        return [] if node.removed_at else [FinishChange(f"{node.name} leaves cluster {ctx.cluster.name}")]

    def verify(self, ctx):
        node = subject(ctx)
        if node.removed_at is None:
            raise StepFailed(f"{node.name} is still a node of {ctx.cluster.name}.")
        ctx.note(f"✓ {node.name} ({node.address}, route {node.jvm_route}) left {ctx.cluster.name}; "
                 f"{ctx.cluster.app_servers().count()} app server(s) remain")


class FinishChange(Change):
    def apply(self, ctx, conn=None):
        from licensing.models import License

        ctx.log(f"→ {self.description}")
        node, now = subject(ctx), timezone.now()
        Node.all_objects.filter(pk=node.pk).update(removed_at=now)
        released = License.objects.filter(node=node, released_at__isnull=True).update(released_at=now)
        ctx.log(f"{node.name} removed from the inventory" + ("; its license row marked released" if released else ""))
        audit.record(ctx.deployment.started_by if ctx.deployment else None, AuditEvent.Action.NODE_REMOVED,
                     target=f"{node.name} ({node.address})", cluster=ctx.cluster,
                     details=f"route {node.jvm_route}; deployment #{ctx.deployment.pk if ctx.deployment else '?'}"
                             + ("; license released" if released else ""))


def taking_over(node, before, key: str) -> str:
    """What the license warning adds when `node` takes over `before`'s route. A system key follows the machine
    (its MAC address): the same key means the same machine came back, and its released license fits it again."""
    from licensing.models import License as LicenseRow

    old_key = LicenseRow.objects.filter(node=before).values_list("system_key", flat=True).first() or ""
    took = f"; it takes over route {node.jvm_route} from {before.name}"
    if not key:
        return (f"{took}: {before.name}'s license fits it only if the key, once read, is the same (a system key "
                "follows the machine's MAC address)")
    if key == old_key:
        return f"{took} with the same system key (the same machine): {before.name}'s released license fits it again"
    return f"{took}, whose license does not follow: a system key follows the machine's MAC address"


@register
class License(Step):
    key = "scale.license"
    title = "The new app server's system key read: it needs a license"
    layer = "scale"
    in_default_plan = False
    checks_only = True
    depends_on = ("scale.add_member",)
    hint = "Read the key again from the cluster's Licenses page once Joget answers on the node."

    def verify(self, ctx):
        from licensing import services
        from licensing.models import License as LicenseRow

        node = ctx.node
        lic, _ = LicenseRow.objects.get_or_create(node=node)
        if ctx.cluster.joget_admin_password:
            lic = services.read_key(lic.pk)
        else:
            ctx.log("The cluster has no Joget admin login: its system key is read from the Licenses page later.")
        key = lic.system_key or "(not read yet)"
        before = (Node.all_objects.filter(cluster=ctx.cluster, jvm_route=node.jvm_route, removed_at__isnull=False)
                  .exclude(pk=node.pk).order_by("-removed_at").first())
        took_over = taking_over(node, before, lic.system_key) if before else ""
        text = f"{node.name} needs a license (system key {key}){took_over}"
        ctx.note(f"⚠ {text}")
        run = ctx.deployment.pk if ctx.deployment else "?"
        joined = f"Added to the cluster {timezone.now():%Y-%m-%d %H:%M} (run #{run}): it needs a license{took_over}."
        LicenseRow.objects.filter(pk=lic.pk).update(joined_note=joined[:500])
        audit.record(ctx.deployment.started_by if ctx.deployment else None, AuditEvent.Action.LICENSE_NEEDED,
                     target=node, details=text)
        if lic.read_error:
            ctx.log(f"reading the key: {lic.read_error[:300]}")
