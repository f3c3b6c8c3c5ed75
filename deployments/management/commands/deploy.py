import logging
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from deployments import engine
from deployments.models import Deployment, LogLine, StepRun
from nodes.models import Cluster


class Command(BaseCommand):
    help = "Start a deployment of CLUSTER (the same as the console's Start button)."

    def add_arguments(self, parser):
        parser.add_argument("cluster")
        parser.add_argument("--dry-run", action="store_true", help="Probe only: show what would change.")
        parser.add_argument("--steps", default="", help="Comma-separated step keys; default: the whole plan.")
        parser.add_argument("--follow", action="store_true", help="Print the live log and a recap; exit 1 on failure.")

    def handle(self, *args, cluster, dry_run, steps, follow, **options):
        try:
            obj = Cluster.objects.get(name=cluster)
        except Cluster.DoesNotExist:
            raise CommandError(f"No cluster named {cluster!r}.") from None
        keys = [s.strip() for s in steps.split(",") if s.strip()]
        # This command says itself that it started (on stdout, for scripts); the event line would repeat it.
        logging.getLogger("deployments.events").setLevel(logging.WARNING)
        try:
            dep = engine.start(obj, dry_run=dry_run, steps=keys)
        except engine.DeploymentRefused as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Started {dep} ({dep.runs.count()} step runs).")
        if not follow:
            return
        try:
            self.follow(dep)
        except KeyboardInterrupt:
            self.stderr.write("Stopped following; the deployment goes on (cancel it in the console).")
            sys.exit(130)
        dep.refresh_from_db()
        recap = dep.recap()
        self.stdout.write(" ".join(f"{k}={v}" for k, v in recap.items()))
        if dep.status != Deployment.Status.SUCCEEDED:
            sys.exit(1)

    def follow(self, dep: Deployment) -> None:
        last_id, seen = 0, {}
        while True:
            dep.refresh_from_db(fields=["status"])
            lines = (LogLine.objects.filter(run__deployment=dep, id__gt=last_id)
                     .select_related("run__node").order_by("id")[:2000])
            for line in lines:
                node = line.run.node.name if line.run.node_id else "cluster"
                self.stdout.write(f"[{line.run.step} {node}] {line.text}")
                last_id = line.id
            for run in StepRun.objects.filter(deployment=dep).select_related("node"):
                if seen.get(run.pk) != run.status and run.is_finished:
                    node = run.node.name if run.node_id else "cluster"
                    self.stdout.write(f"== {run.step} on {node}: {run.status.upper()} {run.message}")
                seen[run.pk] = run.status
            if not dep.is_active and not lines:
                return
            time.sleep(0.2)
