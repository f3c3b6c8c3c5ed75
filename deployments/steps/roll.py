"""Day-2 operations on a serving cluster, one app server at a time: `roll.node` restarts its node through
deployments.rolling.roll_node (out of the balancer, restarted, back in), and for an upgrade or a rollback puts
the cluster's jw.war in place while Tomcat is stopped, keeping the one it replaces outside webapps with its
sha256. The engine runs its runs in waves (StepRun.wave): the next node starts when this one is back.
"""

from __future__ import annotations

from nodes.ssh import quote

from . import get_step, register, tomcat_tools
from .base import AppServerStep, Change, StepFailed

# Root's own directory (never one the service user can change): the WAR a roll replaced, with its sha256.
KEEP_DIR = "/var/lib/jcc-console/wars"
WAR_CHANGING = ("upgrade", "rollback")


def keep_previous_command(webapps_war: str, name: str) -> str:
    """Copy the WAR from webapps (read as the service user, who owns that directory) to KEEP_DIR/<name>.previous,
    with <name>.previous.sha256 beside it; prints the checksum. Nothing when webapps has no WAR."""
    keep = quote(f"{KEEP_DIR}/{name}.previous")
    return "; ".join([
        "set -e", "umask 077", f"mkdir -p {quote(KEEP_DIR)}",
        f"t=$(mktemp {quote(KEEP_DIR + '/.keep.XXXXXX')})",
        f"if runuser -u {tomcat_tools.SERVICE_USER} -- cat -- {quote(webapps_war)} > \"$t\"; then "
        f"s=$(sha256sum < \"$t\" | cut -d' ' -f1); mv -f \"$t\" {keep}; "
        f"printf '%s  %s\\n' \"$s\" {quote(name + '.previous')} > {keep}.sha256; echo \"kept sha256 $s\"; "
        "else rm -f \"$t\"; echo 'no WAR in webapps to keep'; fi",
    ])


class Roll(Change):
    """The node rolled: out of the balancer, `war` changes applied while Tomcat is stopped, back in."""

    war: list | None = None

    def apply(self, ctx, conn=None):
        from deployments import rolling

        backup_id = (ctx.deployment.options or {}).get("backup_first") if ctx.deployment else None
        if backup_id:
            ctx.log(f"the cluster was backed up first: backup {backup_id}")
        ctx.log(f"→ {self.description}")
        war = self.war or []

        def change():
            for c in war:
                name = c.path.rsplit("/", 1)[-1]
                r = ctx.run(keep_previous_command(c.path, name), timeout=600, check=True)
                ctx.log(f"previous {name} kept in {KEEP_DIR} ({r.stdout.strip().splitlines()[-1:]})")
                c.apply(ctx)
        rolling.roll_node(ctx, change if war else None)


@register
class RollNode(AppServerStep):
    key = "roll.node"
    title = "Roll one app server: out of the balancer, restarted, checked, back in"
    layer = "roll"
    in_default_plan = False  # the plan of the day-2 operations (deployments/rolling.py)
    depends_on = ("backup.manifest",)  # when the run backs up first (rolling.BACKED_UP_FIRST); else none
    hint = ("The node stays out of the balancer while the others serve. Fix the cause (the end of catalina.out "
            "is above), then Resume: the nodes already rolled are not restarted again.")

    def rolls(self, cluster) -> bool:
        return True

    def probe(self, ctx):
        from deployments import rolling
        from deployments.steps.members import Manager

        operation = ctx.deployment.operation if ctx.deployment else ""
        war = get_step("joget.war").probe(ctx) if operation in WAR_CHANGING else []
        if war:
            what = "; ".join(c.description for c in war)
            roll = Roll(f"roll {ctx.node.name}: {what}", diff="\n".join(c.diff for c in war))
            roll.war = war
            return [roll]
        if operation not in WAR_CHANGING and not rolling.restarted_by(ctx):
            return [Roll(f"roll {ctx.node.name}: restart Tomcat")]
        if operation in WAR_CHANGING and tomcat_tools.stored_fingerprint(ctx) != tomcat_tools.current_fingerprint(ctx):
            # The WAR is in place (an earlier attempt) but Tomcat has not run it since: restart it.
            return [Roll(f"roll {ctx.node.name}: restart Tomcat, whose WAR changed since it started")]
        member = Manager(ctx.cluster, ctx).member(ctx.node)
        if member.state != ctx.node.balancer_state:
            return [Roll(f"roll {ctx.node.name}: it is {member.status} in the balancer, kept state "
                         f"{ctx.node.balancer_state}")]
        return []

    def verify(self, ctx):
        if tomcat_tools.running_pid(ctx) is None:
            raise StepFailed(f"Tomcat is not running on {ctx.node.name}.")
        if ctx.deployment and ctx.deployment.operation in WAR_CHANGING:
            get_step("joget.war").verify(ctx)
