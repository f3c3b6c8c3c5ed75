import logging
import sys

from django.core.management.base import BaseCommand, CommandError

from deployments import backups, engine
from deployments.models import Deployment

from .backup import follow_run, get_cluster


class Command(BaseCommand):
    help = ("Restore backup ID to CLUSTER. The app servers STOP while the database and the shared directory are "
            "restored (a database restore cannot roll), then start and post_test runs. Needs --yes.")

    def add_arguments(self, parser):
        parser.add_argument("cluster")
        parser.add_argument("backup_id")
        parser.add_argument("--yes", action="store_true", help="Confirm: the app servers stop during the restore.")
        parser.add_argument("--exact", action="store_true",
                            help="Remove files of the shared directory that are not in the backup.")
        parser.add_argument("--no-backup", action="store_true",
                            help="Do not back the cluster up first (the cluster's setting, on by default).")
        parser.add_argument("--follow", action="store_true", help="Print the live log and a recap; exit 1 on failure.")

    def handle(self, *args, cluster, backup_id, yes, exact, no_backup, follow: bool, **options):
        obj = get_cluster(cluster)
        backup = obj.backups.filter(backup_id=backup_id).first()
        if backup is None:
            raise CommandError(f"No backup {backup_id!r} of cluster {obj.name} (see: manage.py backups {obj.name}).")
        if not yes:
            raise CommandError(f"Restoring {backup_id} stops every app server of {obj.name} until the database and "
                               "the shared directory are restored. Run again with --yes to go ahead.")
        logging.getLogger("deployments.events").setLevel(logging.WARNING)
        try:
            restore = backups.start_restore(backup, exact=exact, backup_first=False if no_backup else None)
        except engine.DeploymentRefused as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Started the restore of {backup_id} to {obj.name} ({restore.deployment})"
                          + (f", after a backup first: {restore.pre_backup}." if restore.pre_backup else "."))
        if not follow:
            return
        follow_run(self, restore.deployment)
        restore.deployment.refresh_from_db()
        self.stdout.write(backups.restore_outcome(restore))
        if restore.deployment.status != Deployment.Status.SUCCEEDED:
            sys.exit(1)
