import json

from django.core.management.base import BaseCommand, CommandError

from nodes import audit
from nodes.inventory import dump_inventory
from nodes.models import Cluster


class Command(BaseCommand):
    help = "Print a cluster as an inventory JSON document (docs/inventory.md)."

    def add_arguments(self, parser):
        parser.add_argument("cluster")
        parser.add_argument("--include-secrets", action="store_true",
                            help="Include the secrets (the shared database and Joget admin passwords).")

    def handle(self, *args, cluster, include_secrets, **options):
        try:
            obj = Cluster.objects.get(name=cluster)
        except Cluster.DoesNotExist:
            raise CommandError(f"No cluster named {cluster!r}.") from None
        if include_secrets:  # a copy of the database password leaves the console: who and when is kept
            audit.record(None, audit.Action.INVENTORY_EXPORTED, target=obj, username="(command line)")
        self.stdout.write(json.dumps(dump_inventory(obj, include_secrets=include_secrets), indent=2))
