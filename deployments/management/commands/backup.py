import logging
import sys

from django.core.management.base import BaseCommand, CommandError

from deployments import backups, engine
from deployments.follow import follow
from deployments.models import Backup
from nodes.models import Cluster


def get_cluster(name: str) -> Cluster:
    try:
        return Cluster.objects.get(name=name)
    except Cluster.DoesNotExist:
        raise CommandError(f"No cluster named {name!r}.") from None


def follow_run(command: BaseCommand, dep) -> None:
    """The live log as `deploy --follow` prints it, then the recap line."""
    try:
        follow(dep, command.stdout.write)
    except KeyboardInterrupt:
        command.stderr.write("Stopped following; the run goes on (cancel it in the console).")
        sys.exit(130)
    dep.refresh_from_db()
    command.stdout.write(" ".join(f"{k}={v}" for k, v in dep.recap().items()))


class Command(BaseCommand):
    help = ("Back up CLUSTER: the shared database, the shared directory, the console's desired state and a "
            "manifest, into the backup store (STORAGE_URL). The backup's id is the last line printed.")

    def add_arguments(self, parser):
        parser.add_argument("cluster")
        parser.add_argument("--follow", action="store_true", help="Print the live log and a recap; exit 1 on failure.")

    def handle(self, *args, cluster, follow: bool, **options):
        obj = get_cluster(cluster)
        logging.getLogger("deployments.events").setLevel(logging.WARNING)
        try:
            backup = backups.start_backup(obj)
        except engine.DeploymentRefused as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Started {backup} ({backup.deployment}).")
        failed = False
        if follow:
            follow_run(self, backup.deployment)
            backup.refresh_from_db()
            failed = backups.backup_state(backup) != Backup.State.COMPLETE
            if failed:
                self.stderr.write(f"Backup {backup.backup_id} failed: see the log above.")
            else:
                self.stdout.write(f"Backup complete: {backup.total_size} bytes.")
        self.stdout.write(backup.backup_id)
        if failed:
            sys.exit(1)
