"""What Joget itself records about a cluster: servers.json (stale entries), licensed nodes in wf_setup beside
the console's licenses, each node's build. `--remove-stale NAME` drops entries that are no node of the cluster."""

from django.core.management.base import BaseCommand, CommandError

from licensing.models import License
from nodes import ssh
from nodes.models import Cluster

from ... import joget_state as js
from ...steps import StepFailed


class Command(BaseCommand):
    help = "Show servers.json, Joget's licensed nodes (wf_setup) and builds of a cluster; remove stale entries."

    def add_arguments(self, parser):
        parser.add_argument("cluster")
        parser.add_argument("--remove-stale", nargs="+", default=[], metavar="NAME")

    def handle(self, *args, **opts):
        try:
            cluster = Cluster.objects.get(name=opts["cluster"])
        except Cluster.DoesNotExist:
            raise CommandError(f"No cluster {opts['cluster']}.") from None
        try:
            if opts["remove_stale"]:
                removed = js.remove_stale(cluster, opts["remove_stale"])
                self.stdout.write(f"removed from servers.json: {', '.join(removed) or 'nothing (not stale)'}")
            state = js.read_servers_json(cluster)
        except (StepFailed, ssh.SSHError) as exc:
            raise CommandError(str(exc)) from None
        if state.names is None:
            self.stdout.write(f"servers.json: {state.error}")
        else:
            shown = [f"{n} (STALE: no node of the cluster)" if n in state.stale else n for n in state.names]
            self.stdout.write(f"servers.json: {', '.join(shown) or '(empty)'}")
        found = js.builds(cluster)
        flag = "  MISMATCH" if js.build_mismatch(found) else ""
        for node, build in found.items():
            self.stdout.write(f"build {node}: {build or 'not deployed'}{flag}")
        console = {lic.node.jvm_route: lic.state == License.State.ACTIVATED
                   for lic in License.objects.filter(node__cluster=cluster).select_related("node")}
        try:
            joget = js.licensed_names(js.read_wf_setup(cluster))
        except (StepFailed, ssh.SSHError) as exc:
            self.stdout.write(f"wf_setup: {exc}")
            return
        for row in js.compare_licenses(console, joget):
            mark = "  DIFFERS" if row["differs"] else ""
            self.stdout.write(f"license {row['node']}: console {'activated' if row['console'] else '-'}, "
                              f"Joget {'licensed' if row['joget'] else '-'}{mark}")
