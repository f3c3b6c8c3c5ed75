"""Steps that exist only for the engine's tests (loaded through EXTRA_STEP_MODULES).

They are never in the default plan: a test names them with `steps=[...]`.
Their behaviour is steered by small files on the node, so a test can make one
node fail, or a step run longer, without any other channel. The files they write
are in /run: the console's writer refuses to write as root where other users can
(as in /tmp).
"""

from deployments.steps import Change, Step, StepFailed, register
from nodes.models import SharedDatabase


class _AppServerStep(Step):
    layer = "test"
    in_default_plan = False

    def targets(self, cluster):
        return list(cluster.app_servers())


@register
class Marker(_AppServerStep):
    key = "test.marker"
    title = "Write a marker file"

    def probe(self, ctx):
        change = ctx.want_file("/run/jcc-marker", f"route={ctx.node.jvm_route}\n")
        return [change] if change else []

    def verify(self, ctx):
        if ctx.read_file("/run/jcc-marker") != f"route={ctx.node.jvm_route}\n".encode():
            raise StepFailed("marker file does not hold the planned content")


@register
class Flaky(_AppServerStep):
    key = "test.flaky"
    title = "Fails where /tmp/jcc-fail exists"
    depends_on = ("test.marker",)
    hint = "Remove /tmp/jcc-fail on that node, then retry."

    def probe(self, ctx):
        return [Change("check the fail flag", command="if [ -e /tmp/jcc-fail ]; then echo 'fail flag present' >&2; "
                                                     "exit 3; fi; echo flag absent")]


@register
class After(_AppServerStep):
    key = "test.after"
    title = "Runs after flaky"
    depends_on = ("test.flaky",)

    def probe(self, ctx):
        change = ctx.want_file("/run/jcc-after", "done\n")
        return [change] if change else []


@register
class Slow(_AppServerStep):
    key = "test.slow"
    title = "Prints a tick every 0.1 s"

    def probe(self, ctx):
        return [Change("tick", command="n=$(cat /tmp/jcc-slow-ticks 2>/dev/null || echo 30); "
                                       "for i in $(seq 1 $n); do echo tick $i; sleep 0.1; done",
                       timeout=120)]


@register
class Later(_AppServerStep):
    key = "test.later"
    title = "Writes a file; registered after test.slow, so its task is queued behind test.slow's"

    def probe(self, ctx):
        change = ctx.want_file("/run/jcc-later", "done\n")
        return [change] if change else []


@register
class Secret(_AppServerStep):
    key = "test.secret"
    title = "Handles the database password"

    def probe(self, ctx):
        from nodes.ssh import quote

        password = SharedDatabase.objects.get(cluster=ctx.cluster).password
        return [Change("echo the password", command=f"printf 'pw=%s\\n' {quote(password)}; "
                                                    f"printf 'pw=%s\\n' {quote(password)} >&2")]


@register
class Checks(_AppServerStep):
    key = "test.checks"
    title = "Only checks (as the post-deployment test does)"
    checks_only = True

    def verify(self, ctx):
        ctx.run("hostname", check=True)
        ctx.note(f"✓ reachable: {ctx.node.name} answers over SSH")
        ctx.note(f"✓ route set: {ctx.node.jvm_route}")
        ctx.note("– multicast: not applicable here")
