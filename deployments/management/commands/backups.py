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
        rows = []
        for b in obj.backups.all():
            rows.append({
                "id": b.backup_id, "state": backups.backup_state(b), "created": b.created.isoformat(),
                "finished": b.finished.isoformat() if b.finished else None, "reason": b.reason, "note": b.note,
                "size": b.total_size,
                "parts": {p: {"size": v.get("size"), "sha256": v.get("sha256")} for p, v in b.parts.items()},
                "joget_version": b.manifest.get("joget_version", ""),
            })
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
