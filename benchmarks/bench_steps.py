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
