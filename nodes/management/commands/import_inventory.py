import json

from django.core.management.base import BaseCommand, CommandError

from nodes import audit
from nodes.inventory import ANYWHERE, InventoryError, load_inventory


class Command(BaseCommand):
    help = "Create a cluster from an inventory JSON document (docs/inventory.md); '-' reads standard input."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--replace", action="store_true", help="Recreate the cluster if it exists.")

    def handle(self, *args, file, replace, **options):
        try:
            if file == "-":
                import sys

                data = json.load(sys.stdin)
            else:
                with open(file, encoding="utf-8") as fh:
                    data = json.load(fh)
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}.") from None
        except ValueError as exc:
            raise CommandError(f"{file} is not a JSON document: {exc}.") from None
        try:
            cluster = load_inventory(data, replace=replace, local_root=ANYWHERE)
        except InventoryError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        audit.record(None, audit.Action.INVENTORY_IMPORTED, target=cluster, username="(command line)",
                     details=f"{cluster.nodes.count()} nodes, from {file}{' (replaced)' if replace else ''}")
        self.stdout.write(f"Imported cluster {cluster.name} with {cluster.nodes.count()} nodes.")
