"""Deployment runs, the prerequisite checklist and the wizard's place (the files they install are nodes.Artifact)."""

from django.db import models
from django.db.models import Count, Q

from nodes.models import Cluster


class Operation(models.TextChoices):
    """What a run does: the plan (deploy), or a day-2 operation run as a plan of its own (deployments/rolling.py)."""

    DEPLOY = "deploy", "deployment"
    RESTART = "restart", "rolling restart"
    UPGRADE = "upgrade", "rolling upgrade"
    ROLLBACK = "rollback", "rollback"
    MEMBERS = "members", "balancer member change"
    SCALE_OUT = "scale_out", "app server addition"
    SCALE_IN = "scale_in", "app server removal"


class Deployment(models.Model):
    """One run of the plan for a cluster."""

    Operation = Operation

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="deployments")
    started_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="deployments"
    )
    dry_run = models.BooleanField(default=False)
    steps = models.JSONField(default=list, blank=True, help_text="Only these step keys; empty: the whole plan.")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    operation = models.CharField(max_length=12, choices=Operation.choices, default=Operation.DEPLOY)
    options = models.JSONField(default=dict, blank=True, help_text="The operation's options (batch, nodes, WARs).")
    cancel_requested = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        constraints = [
            # One deployment at a time per cluster, enforced by the database itself.
            models.UniqueConstraint(
                fields=["cluster"], condition=models.Q(status="running"), name="one_running_deployment_per_cluster"
            )
        ]

    def __str__(self):
        return f"{self.kind} #{self.pk} of {self.cluster}"

    @property
    def kind(self) -> str:
        """What this run is to an admin: backups, restores and drift checks are engine runs too."""
        prefixes = {step.split(".", 1)[0] for step in self.steps or ()}
        if prefixes == {"backup"}:
            return "backup"
        if prefixes and prefixes <= {"backup", "restore"}:
            return "restore"
        if self.operation != Operation.DEPLOY:
            return Operation(self.operation).label
        if self.dry_run:
            return "drift check" if DriftCheck.objects.filter(deployment_id=self.pk).exists() else "dry run"
        return "deployment"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.RUNNING

    def progress(self) -> dict[str, int]:
        """How far its step runs are: total, done (finished, whatever the outcome), failed (or cancelled), percent
        done. Every page that draws a progress bar reads it here."""
        counts = self.runs.aggregate(
            total=Count("id"),
            done=Count("id", filter=Q(status__in=StepRun.FINISHED)),
            failed=Count("id", filter=Q(status__in=[StepRun.Status.FAILED, StepRun.Status.CANCELLED])),
        )
        counts["percent"] = int(100 * counts["done"] / counts["total"]) if counts["total"] else 0
        return counts

    def recap(self) -> dict[str, int]:
        counts = {"changed": 0, "ok": 0, "failed": 0, "skipped": 0}
        for status in self.runs.values_list("status", flat=True):
            if status in counts:
                counts[status] += 1
            elif status == StepRun.Status.CANCELLED:
                counts["failed"] += 1
        return counts


class StepRun(models.Model):
    """One step of the plan on one node (or on the cluster, node empty)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        OK = "ok", "OK"
        CHANGED = "changed", "Changed"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        CANCELLED = "cancelled", "Cancelled"

    DONE = (Status.OK, Status.CHANGED)
    FINISHED = (Status.OK, Status.CHANGED, Status.FAILED, Status.SKIPPED, Status.CANCELLED)

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="runs")
    step = models.CharField(max_length=64)
    position = models.PositiveIntegerField(help_text="Order of the step in the plan.")
    # RESTRICT: a node with a deployment history cannot be deleted on its own (the history would go with it);
    # it leaves its cluster through scale-in instead. Deleting the whole cluster still takes both.
    node = models.ForeignKey("nodes.Node", null=True, blank=True, on_delete=models.RESTRICT, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    exit_code = models.IntegerField(null=True, blank=True)
    message = models.TextField(blank=True, help_text="Why it failed, or what it changed, in one paragraph.")
    hint = models.TextField(blank=True)
    changes = models.JSONField(default=list, blank=True, help_text="What changed, or would change: text and diffs.")
    attempt = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    last_seq = models.PositiveIntegerField(default=0)
    # A rolling step's runs go in waves (1, 2, ...): each waits for the one before; 0 = not rolling.
    wave = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "node__name"]
        indexes = [models.Index(fields=["status", "heartbeat"])]

    def __str__(self):
        return f"{self.step} on {self.node.name if self.node_id else 'cluster'}"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


class LogLine(models.Model):
    class Stream(models.TextChoices):
        STDOUT = "stdout"
        STDERR = "stderr"
        INFO = "info"

    run = models.ForeignKey(StepRun, on_delete=models.CASCADE, related_name="lines")
    seq = models.PositiveIntegerField()
    stream = models.CharField(max_length=6, choices=Stream.choices, default=Stream.STDOUT)
    text = models.TextField()
    time = models.DateTimeField()

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="log_line_seq_unique")]

    def __str__(self):
        return self.text[:80]


class CheckRun(models.Model):
    """One run of the prerequisite checklist (the guide's pre-deployment requirements)."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        PASSED = "passed", "Passed"
        FAILED = "failed", "Failed"

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="check_runs")
    started_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return f"checklist #{self.pk} of {self.cluster}"


class CheckResult(models.Model):
    """One item of the checklist on one node (or on the cluster)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting"
        PASS = "pass", "Pass"
        FAIL = "fail", "Fail"
        # Not there yet, and the deployment sets it up (a layer on "Set it up for me"): not a failure.
        PLANNED = "planned", "Will be set up"

    check_run = models.ForeignKey(CheckRun, on_delete=models.CASCADE, related_name="results")
    item = models.CharField(max_length=40)
    position = models.PositiveIntegerField(default=0)
    node = models.ForeignKey("nodes.Node", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    found = models.TextField(blank=True, help_text="What the check saw.")
    fix = models.TextField(blank=True, help_text="How to fix it, when it failed.")
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["position", "node__name"]

    def __str__(self):
        return f"{self.item} on {self.node.name if self.node_id else 'cluster'}: {self.status}"


class WizardState(models.Model):
    """Where the admin is in the deploy wizard for a cluster: leaving and coming back resumes it."""

    STEPS = [
        ("nodes", "Cluster and nodes"),
        ("layers", "Layers"),
        ("artifacts", "Artifacts"),
        ("checklist", "Checklist"),
        ("review", "Review"),
        ("run", "Run"),
        ("licenses", "Licenses"),
        ("test", "Test"),
    ]

    cluster = models.OneToOneField(Cluster, on_delete=models.CASCADE, related_name="wizard")
    step = models.CharField(max_length=20, default="nodes")
    updated = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"wizard of {self.cluster} at {self.step}"


class ApiToken(models.Model):
    """A bearer token for the REST API, held by one user and acting with that user's role.

    Only a SHA-256 digest of the secret is stored: the token is shown once, when it is made
    (`manage.py api_token`). `key_id` is the token's public part, to find the row and name it in lists.
    """

    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. the CI job that holds it.")
    key_id = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return f"API token {self.name!r} of {self.user}"

    @property
    def is_active(self) -> bool:
        return self.revoked is None and self.user.is_active


class JogetRecords(models.Model):
    """The last reading of what Joget itself records about a cluster: the names in the shared servers.json, the nodes
    that wf_setup records as licensed, and each app server's build (deployments.joget_state). A worker reads them
    over SSH, so the page that shows them never waits on a node; `busy` is claimed atomically, like License.busy."""

    class Busy(models.TextChoices):
        IDLE = "", "idle"
        READING = "reading", "reading"
        REMOVING = "removing", "removing a stale entry"

    cluster = models.OneToOneField(Cluster, on_delete=models.CASCADE, related_name="joget_records")
    busy = models.CharField(max_length=12, choices=Busy.choices, default=Busy.IDLE, blank=True)
    busy_since = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    reading = models.JSONField(default=dict, blank=True, help_text="servers, builds and wf_setup as last read.")
    last_removal = models.CharField(max_length=500, blank=True, help_text="What the last Remove found and did.")

    def __str__(self):
        return f"Joget's records of {self.cluster}"


# Backups, restores and drift checks: their own module, found by Django through this import.
from .backup_models import Backup, BackupPolicy, DriftCheck, Restore  # noqa: E402, F401
