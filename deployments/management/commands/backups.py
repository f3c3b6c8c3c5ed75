import json

from django.core.management.base import BaseCommand

from deployments import backups

from .backup import get_cluster


class Command(BaseCommand):
    help = "List the backups of CLUSTER, newest first."

    def add_arguments(self, parser):
        parser.add_argument("cluster")
        parser.add_argument("--format", choices=["table", "json"], default="table")

    def handle(self, *args, cluster, format: str, **options):
        obj = get_cluster(cluster)
        rows = [backups.summary(b) for b in obj.backups.all()]
        if format == "json":
            self.stdout.write(json.dumps(rows, indent=2))
            return
        if not rows:
            self.stdout.write(f"No backups of {obj.name}.")
            return
        self.stdout.write(f"{'ID':<24} {'STATE':<9} {'CREATED':<20} {'SIZE':>14}  REASON")
        for r in rows:
            self.stdout.write(f"{r['id']:<24} {r['state']:<9} {r['created'][:19].replace('T', ' '):<20} "
                              f"{r['size']:>14}  {r['reason']}{' (' + r['note'] + ')' if r['note'] else ''}")
