"""`manage.py testbed up|down|status`: simulated hosts on this machine for trying the console.

`up` prints the inventory JSON (docs/inventory.md) on standard output and nothing else, so
`manage.py testbed up > inv.json` or `| manage.py import_inventory -` work; progress and
errors go to standard error. The hosts keep running after the command exits.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from nodes.testbed import DEFAULT_PREFIX, DEFAULT_WFLOW_HOME, Testbed, TestbedError, known_prefixes, status_lines
from nodes.testbed import stderr_log as _log


class Command(BaseCommand):
    help = "Simulated Linux hosts (lb, app1..N, db, spare1..N) in namespaces on this machine: up, down, status."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="{up,down,status}")
        up = sub.add_parser("up", help="create the hosts (or find them up) and print the inventory JSON")
        tier = up.add_mutually_exclusive_group()
        tier.add_argument("--light", dest="full", action="store_false", help="hosts with sshd only (default)")
        tier.add_argument("--full", dest="full", action="store_true",
                          help="also require Tomcat, Apache and MariaDB packages on this machine")
        up.set_defaults(full=False)  # both options share `full`: without this, --light's store_false default wins
        up.add_argument("--app-servers", type=int, default=2, metavar="N", help="number of app servers (default 2)")
        up.add_argument("--spare", type=int, default=0, metavar="N",
                        help="also N hosts ready to become app servers, left out of the cluster (spare_nodes)")
        up.add_argument("--file-server", action="store_true", help="add a host 'files' with the file_server role")
        up.add_argument("--subnet", help="a free private /24 (default: 10.213.X.0/24, X from the prefix)")
        up.add_argument("--wflow-home", default=DEFAULT_WFLOW_HOME, help="shared directory path on the app servers")
        up.add_argument("--cluster", help="cluster name in the inventory (default: testbed[-PREFIX])")
        up.add_argument("--joget-version", default="8.1")
        up.add_argument("--recreate", action="store_true", help="fresh hosts even if they are up already")
        up.add_argument("--import", dest="do_import", action="store_true",
                        help="also load the inventory into the console (replacing a cluster of that name)")
        sub.add_parser("down", help="remove every namespace, link, mount, process and directory `up` made")
        status = sub.add_parser("status", help="list what exists for the prefix")
        status.add_argument("--json", action="store_true", help="machine-readable output")
        up.add_argument("--force", action="store_true",
                        help="bring hosts up although this console is configured for production (HTTPS=true)")
        for p in sub.choices.values():
            p.add_argument("--prefix", default=DEFAULT_PREFIX,
                           help=f"names everything the testbed makes (default {DEFAULT_PREFIX})")

    def handle(self, *args, action, prefix, **options):
        if action == "up" and settings.HTTPS and not options["force"]:
            # Hosts run as root on this machine, and a testbed loaded into the console is one its admins
            # deploy to: beside a production console that would be root on the console's own machine.
            raise CommandError("This console is configured for production (HTTPS=true): testbed hosts run as root "
                               "on this machine, so they are refused here. Use a separate machine for testbeds, "
                               "or --force if this one is not a production console.")
        try:
            if action == "up":
                self._up(prefix, **options)
            elif action == "down":
                Testbed(prefix, log=_log).down()
            else:
                self._status(prefix, options["json"])
        except TestbedError as exc:
            raise CommandError(str(exc)) from None

    def _up(self, prefix, *, full, app_servers, spare, file_server, subnet, wflow_home, cluster, joget_version,
            recreate, do_import, **_):
        tb = Testbed(prefix, app_servers=app_servers, file_server=file_server, spares=spare, full=full, subnet=subnet,
                     wflow_home=wflow_home, cluster=cluster, joget_version=joget_version, log=_log)
        inventory = tb.up(recreate=recreate)
        self.stdout.write(json.dumps(inventory, indent=2))
        self.stdout.flush()
        if do_import:
            self._import(inventory)
        _log(f"hosts are up; take them down with: manage.py testbed down --prefix {prefix}")

    def _import(self, inventory: dict) -> None:
        try:
            from nodes.inventory import ANYWHERE, load_inventory
        except ImportError as exc:
            raise CommandError(f"--import: the console's inventory loader is not available ({exc}); "
                               "the hosts are up and the inventory was printed above.") from None
        try:
            cluster = load_inventory(inventory, replace=True, local_root=ANYWHERE)
        except Exception as exc:  # noqa: BLE001 - any failure (validation, missing tables) is shown, not traced
            messages = getattr(exc, "messages", None) or [str(exc)]
            hint = " (has `manage.py migrate` been run?)" if "no such table" in str(exc) or "does not exist" in str(
                exc) else ""
            raise CommandError(f"--import failed: {' '.join(messages)}{hint}") from None
        _log(f"imported cluster {cluster.name} with {len(inventory['nodes'])} nodes into the console")

    def _status(self, prefix: str, as_json: bool) -> None:
        status = Testbed(prefix, log=_log).status()
        if as_json:
            self.stdout.write(json.dumps(status, indent=2))
            return
        for line in status_lines(prefix, status, known_prefixes()):
            self.stdout.write(line)
