import json

from django.core.management.base import BaseCommand, CommandError

from licensing import services
from nodes.models import Cluster


class Command(BaseCommand):
    help = ("Print the system key of every app server of a cluster, as last read from each node "
            "(--refresh reads them from the nodes first). License strings are never printed.")

    def add_arguments(self, parser):
        parser.add_argument("cluster")
        parser.add_argument("--format", choices=["table", "csv", "json"], default="table")
        parser.add_argument("--refresh", action="store_true",
                            help="Read each key from its node now (directly, not through the load balancer).")

    def handle(self, *args, cluster, format, refresh, **options):
        try:
            obj = Cluster.objects.get(name=cluster)
        except Cluster.DoesNotExist:
            raise CommandError(f"No cluster named {cluster!r}.") from None
        failed = []
        if refresh:
            # The same code the Celery task runs, here synchronously.
            failed = [lic.read_error for lic in services.refresh_cluster(obj) if lic.read_error]
        rows = services.export_rows(obj)
        if format == "json":
            out = json.dumps([{"node": r["node"], "address": r["address"], "system_key": r["system_key"]}
                              for r in rows], indent=2)
        elif format == "csv":
            out = services.export_csv(obj).rstrip("\n")
        else:
            out = self._table(rows)
        self.stdout.write(out)
        if failed:
            raise CommandError("could not read every key:\n  " + "\n  ".join(failed))

    @staticmethod
    def _table(rows: list[dict]) -> str:
        table = [("NODE", "ADDRESS", "SYSTEM KEY", "READ AT", "PROFILE", "STATE")] + [
            (r["node"], f"{r['address']}:{r['http_port']}", r["system_key"] or "-", r["read_at"] or "-",
             r["profile"] or "-", r["state"]) for r in rows
        ]
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table)
