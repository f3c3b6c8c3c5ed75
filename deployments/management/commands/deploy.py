import logging

from django.core.management.base import BaseCommand, CommandError

from deployments import engine
from deployments.follow import follow_to_end
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
        if follow:
            follow_to_end(dep, self.stdout, self.stderr)
