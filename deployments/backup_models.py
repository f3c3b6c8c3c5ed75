"""Rows of backups, restores and drift checks (imported by deployments.models, where Django finds them).

A backup or restore is a run of the deployment engine (a Deployment whose steps are the backup or restore
steps, deployments/backup_steps.py): the live log, the recap, Retry and Cancel come with it. These rows say
what the run was for and what it produced.
"""

from django.db import models

from nodes.models import Cluster


class Backup(models.Model):
    """One backup of a cluster: the shared database, the shared directory, the desired state, a manifest."""

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        COMPLETE = "complete", "Complete"
        FAILED = "failed", "Failed"

    class Reason(models.TextChoices):
        ON_DEMAND = "on_demand", "On demand"
        SCHEDULED = "scheduled", "Scheduled"
        BEFORE_OPERATION = "before_operation", "Before an operation"

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="backups")
    backup_id = models.CharField(max_length=40, unique=True, help_text="The name an admin types: time and a suffix.")
    deployment = models.ForeignKey("deployments.Deployment", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", help_text="The engine run that made it.")
    reason = models.CharField(max_length=20, choices=Reason.choices, default=Reason.ON_DEMAND)
    note = models.CharField(max_length=200, blank=True, help_text="What it was made before, for a pre-operation one.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING)
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)
    # Per part (database, files, desired_state, manifest): {"name": storage name, "size": bytes, "sha256": hex}.
    parts = models.JSONField(default=dict, blank=True)
    manifest = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return f"backup {self.backup_id} of {self.cluster}"

    @property
    def total_size(self) -> int:
        return sum(int(p.get("size") or 0) for p in self.parts.values())


class Restore(models.Model):
    """One restore of a backup to its cluster (a run of the engine with the restore steps)."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="restores")
    backup = models.ForeignKey(Backup, on_delete=models.PROTECT, related_name="restores")
    deployment = models.ForeignKey("deployments.Deployment", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    exact = models.BooleanField(default=False, help_text="Remove files of the shared directory not in the backup.")
    pre_backup = models.CharField(max_length=40, blank=True, help_text="The backup taken just before, if any.")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return f"restore of {self.backup.backup_id}"


class BackupPolicy(models.Model):
    """A cluster's backup and drift settings; a cluster without a row has the defaults."""

    cluster = models.OneToOneField(Cluster, on_delete=models.CASCADE, related_name="backup_policy")
    every_hours = models.PositiveIntegerField(default=0, help_text="Scheduled backups every N hours; 0: off.")
    keep = models.PositiveIntegerField(default=7, help_text="Scheduled backups kept; older ones are deleted.")
    before_operations = models.BooleanField(default=True, help_text="Back up before an upgrade, scale or restore.")
    drift_every_minutes = models.PositiveIntegerField(default=0, help_text="Drift checks every N minutes; 0: off.")

    def __str__(self):
        return f"backup policy of {self.cluster}"


class DriftCheck(models.Model):
    """One drift check: the plan's probes (a dry run) compared with what the console last deployed."""

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        CLEAN = "clean", "No drift"
        DRIFTED = "drifted", "Drifted"
        FAILED = "failed", "Could not check"

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="drift_checks")
    deployment = models.ForeignKey("deployments.Deployment", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", help_text="The dry run whose probes it read.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING)
    # [{"step", "node", "description", "diff"}] for every drifted step and node.
    findings = models.JSONField(default=list, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)
    notified = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return f"drift check #{self.pk} of {self.cluster}: {self.state}"
