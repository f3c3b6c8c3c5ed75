import sys

from django.core.management.base import BaseCommand, CommandError

from deployments import checklist
from nodes.models import Cluster


class Command(BaseCommand):
    help = "Run the prerequisite checklist of CLUSTER; exit code 1 when an item fails."

    def add_arguments(self, parser):
        parser.add_argument("cluster")

    def handle(self, *args, cluster, **options):
        try:
            obj = Cluster.objects.get(name=cluster)
        except Cluster.DoesNotExist:
            raise CommandError(f"No cluster named {cluster!r}.") from None
        run = checklist.run_now(obj)
        titles = {i.key: i.title for i in checklist.ITEMS}
        for r in run.results.select_related("node"):
            mark = {"pass": "PASS", "planned": "TODO"}.get(r.status, "FAIL")  # TODO: the deployment sets it up
            where = r.node.name if r.node_id else "cluster"
            self.stdout.write(f"{mark}  {titles[r.item]} [{where}]: {r.found}")
            if r.fix:
                self.stdout.write(f"      fix: {r.fix}")
        self.stdout.write(f"checklist {run.status}")
        if run.status != "passed":
            sys.exit(1)
