"""Steps used only by the benchmarks (loaded through EXTRA_STEP_MODULES)."""

from deployments.steps import Change, Step, register


@register
class Ticks(Step):
    """Prints a timestamped line every 50 ms: the node's clock is the machine's clock on the testbed."""

    key = "bench.ticks"
    title = "Timestamped ticks"
    layer = "bench"
    in_default_plan = False

    def targets(self, cluster):
        return list(cluster.app_servers())[:1]

    def probe(self, ctx):
        return [Change("print ticks", command="for i in $(seq 1 120); do echo \"tick $i $(date +%s.%N)\"; "
                                              "sleep 0.05; done", timeout=120)]


@register
class RestartStandIn(Step):
    """The deployment benchmark's last step (benchmarks/workload.py): Tomcat's restart stood in for by a
    0.5 s command, then the same final check that the Fabric and Ansible runs make."""

    key = "bench.restart"
    title = "Restart (0.5 s stand-in) and verify"
    layer = "bench"
    in_default_plan = False
    depends_on = ("replication.server_xml", "replication.hosts", "joget.setenv", "joget.war")

    def targets(self, cluster):
        return list(cluster.app_servers())

    def probe(self, ctx):
        from benchmarks.workload import RESTART

        return [Change("restart Tomcat (stand-in)", command=RESTART, timeout=60)]

    def verify(self, ctx):
        from benchmarks.workload import verify_command

        ctx.run(verify_command(ctx.node.name, ctx.node.jvm_route), check=True, timeout=60)
