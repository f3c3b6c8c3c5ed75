"""Inventory: clusters, their nodes, the shared resources the guide needs, and the files a deployment installs."""

import hashlib
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone

from joget_cluster.crypto import EncryptedTextField

from . import validators as v


class Credential(models.Model):
    """How the console logs in to nodes: an SSH private key or a password."""

    class Kind(models.TextChoices):
        KEY = "key", "SSH private key"
        PASSWORD = "password", "Password"

    name = models.CharField(max_length=63, unique=True, validators=[v.validate_name])
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.KEY)
    private_key = EncryptedTextField(blank=True)
    passphrase = EncryptedTextField(blank=True)
    password = EncryptedTextField(blank=True)
    public_key = models.TextField(blank=True, help_text="Paste this into ~/.ssh/authorized_keys on each node.")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        if self.kind == self.Kind.KEY and not self.private_key:
            raise ValidationError({"private_key": "Paste a private key, or generate a key pair."})
        if self.kind == self.Kind.PASSWORD and not self.password:
            raise ValidationError({"password": "Enter the SSH password."})


class Cluster(models.Model):
    name = models.CharField(max_length=63, unique=True, validators=[v.validate_name])
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    joget_version = models.CharField(max_length=16, default="8.1")
    context_path = models.CharField(max_length=65, default="/jw", validators=[v.validate_context_path])
    wflow_home = models.CharField(
        "wflow home", max_length=255,
        default="/opt/joget/wflow",
        validators=[v.validate_absolute_path],
        help_text="The shared directory as the app servers see it (-Dwflow.home).",
    )
    datasource_profile = models.CharField(max_length=64, default="default", validators=[v.validate_profile_name])
    multicast = models.BooleanField(
        default=True,
        help_text="Tomcat membership by multicast; off lists the other app servers statically.",
    )
    synchronous_replication = models.BooleanField(
        default=False,
        help_text="Session replication acknowledged before each request ends (channelSendOptions 6): no node answers "
                  "with an older copy of a session after a failover or a rolling restart, at the cost of a round "
                  "trip to the other app servers per request. Off: Tomcat's asynchronous default (8).",
    )
    roll_batch = models.PositiveSmallIntegerField(
        "rolling batch", default=1,
        help_text="App servers a rolling operation restarts at once (always fewer than all of them).",
    )
    credential = models.ForeignKey(
        Credential, null=True, blank=True, on_delete=models.PROTECT, help_text="Default SSH login for its nodes."
    )
    joget_admin_user = models.CharField(max_length=64, default="admin")
    joget_admin_password = EncryptedTextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("nodes:cluster_detail", args=[self.name])

    @property
    def major_version(self) -> int:
        head = self.joget_version.split(".", 1)[0]
        return int(head) if head.isdigit() else 0

    def app_servers(self):
        """The app servers in the cluster: a node being removed (`leaving`) no longer counts."""
        return self.nodes.filter(is_app_server=True, leaving=False).order_by("name")

    LAYERS = ("shared_directory", "shared_database", "load_balancer")

    def layer(self, kind: str):
        """The cluster's shared directory, shared database or load balancer (`kind`, one of LAYERS) with its
        node, or None while it is not set. Queried each time: a step or check never reads a stale one."""
        if kind not in self.LAYERS:
            raise ValueError(f"no layer {kind!r}")
        return self._meta.get_field(kind).related_model.objects.filter(cluster=self).select_related("node").first()


def artifact_path(instance, filename):
    return f"artifacts/{instance.cluster.name}/{instance.kind}/{filename}"


class Artifact(models.Model):
    """A file from the Joget bundle (or a Tomcat archive), kept in Django storage
    so that any worker, on any machine, can read it."""

    class Kind(models.TextChoices):
        JW_WAR = "jw_war", "jw.war"
        JWDESIGNER_WAR = "jwdesigner_war", "jwdesigner.war"
        TOMCAT_ARCHIVE = "tomcat_archive", "Tomcat archive"
        SCHEMA_SQL = "schema_sql", "Schema SQL"
        # The jw.war a rolling upgrade replaced: a rollback makes it the cluster's jw.war again.
        PREVIOUS_JW_WAR = "previous_jw_war", "previous jw.war"

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="artifacts")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    file = models.FileField(upload_to=artifact_path, max_length=500)
    original_name = models.CharField(max_length=255)
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    uploaded = models.DateTimeField(auto_now_add=True)

    class Meta:
        # Born in deployments; the table kept its name when the model moved down to the inventory.
        db_table = "deployments_artifact"
        ordering = ["cluster", "kind"]
        constraints = [models.UniqueConstraint(fields=["cluster", "kind"], name="one_artifact_per_kind")]

    def __str__(self):
        return f"{self.get_kind_display()} ({self.original_name})"

    @staticmethod
    def digest(fileobj) -> tuple[int, str]:
        """Size and sha256 of a file, read in chunks (WARs run to hundreds of MB)."""
        h, size = hashlib.sha256(), 0
        for chunk in iter(lambda: fileobj.read(1024 * 1024), b""):
            h.update(chunk)
            size += len(chunk)
        fileobj.seek(0)
        return size, h.hexdigest()

    @staticmethod
    def delete_with_files(rows) -> None:
        """Delete these artifacts and, once the transaction commits, their stored files (a WAR is hundreds of MB:
        replaced ones must not pile up over years of uploads; a rollback keeps rows and files as they were)."""
        for art in list(rows):
            stored = art.file
            art.delete()
            if stored.name:
                transaction.on_commit(lambda stored=stored: stored.storage.delete(stored.name), robust=True)


class BalancerState(models.TextChoices):
    """An app server's member state in the load balancer (Apache's D and N status flags)."""

    ENABLED = "enabled", "Enabled"
    DISABLED = "disabled", "Disabled"
    DRAIN = "drain", "Drain"  # only its own sticky sessions: for clusters without session replication


class InClusterNodes(models.Manager):
    """The nodes of the clusters as they are: a removed app server stays in the deployment history (a step run's
    node is read through the base manager) but is no node of its cluster any more."""

    def get_queryset(self):
        return super().get_queryset().filter(removed_at__isnull=True)


class Node(models.Model):
    ROLES = ("load_balancer", "app_server", "database", "file_server")

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="nodes")
    name = models.CharField(max_length=63, validators=[v.validate_name])
    address = models.CharField(max_length=253, validators=[v.validate_address])
    ssh_port = models.PositiveIntegerField("SSH port", default=22, validators=[v.validate_port])
    ssh_user = models.CharField("SSH user", max_length=32, default="root", validators=[v.validate_posix_user])
    credential = models.ForeignKey(
        Credential, null=True, blank=True, on_delete=models.PROTECT, help_text="Empty: the cluster's default."
    )
    is_load_balancer = models.BooleanField("load balancer", default=False)
    is_app_server = models.BooleanField("app server", default=False)
    is_database = models.BooleanField("database", default=False)
    is_file_server = models.BooleanField("file server", default=False)

    # Host key pinning: `host_key` is "<type> <base64>" as confirmed by an admin;
    # `offered_host_key` is what the last Connect fetched, awaiting confirmation.
    host_key = models.TextField(blank=True)
    host_key_confirmed_at = models.DateTimeField(null=True, blank=True)
    offered_host_key = models.TextField(blank=True)
    offered_host_key_error = models.TextField(blank=True)
    offered_host_key_at = models.DateTimeField(null=True, blank=True)

    # App-server settings.
    jvm_route = models.CharField("jvmRoute", max_length=32, blank=True, validators=[v.validate_jvm_route])
    http_port = models.PositiveIntegerField("HTTP port", default=8080, validators=[v.validate_port])
    balancer_state = models.CharField(
        max_length=10, choices=BalancerState.choices, default=BalancerState.ENABLED,
        help_text="The app server's member state in the load balancer, kept in the generated site (status=+D/+N).")
    install_path = models.CharField(max_length=255, default="/opt/joget", validators=[v.validate_absolute_path])
    catalina_home = models.CharField(
        "CATALINA_HOME", max_length=255, blank=True, validators=[v.validate_absolute_path],
        help_text="An installed Tomcat to use; empty: unpack the uploaded archive under the install path.",
    )
    catalina_base = models.CharField(
        "CATALINA_BASE", max_length=255, blank=True, validators=[v.validate_absolute_path],
        help_text="Empty: <install path>/tomcat-base.",
    )

    facts = models.JSONField(default=dict, blank=True)
    facts_at = models.DateTimeField(null=True, blank=True)
    facts_error = models.TextField(blank=True)
    probe_requested_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    # Scale in: `leaving` while its removal runs (no longer a member anyone plans for), `removed_at` once it has
    # left; its name and jvmRoute are then free for a new node.
    leaving = models.BooleanField(default=False)
    removed_at = models.DateTimeField(null=True, blank=True)

    all_objects = models.Manager()
    objects = InClusterNodes()  # the default: cluster.nodes, forms, pages, checks

    class Meta:
        ordering = ["cluster", "name"]
        default_manager_name = "objects"
        base_manager_name = "all_objects"
        constraints = [
            models.UniqueConstraint(fields=["cluster", "name"], condition=models.Q(removed_at__isnull=True),
                                    name="node_name_unique_in_cluster"),
            models.UniqueConstraint(
                fields=["cluster", "jvm_route"],
                condition=~models.Q(jvm_route="") & models.Q(removed_at__isnull=True),
                name="jvm_route_unique_in_cluster",
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.address})"

    def get_absolute_url(self):
        return reverse("nodes:node_detail", args=[self.cluster.name, self.name])

    @property
    def roles(self) -> list[str]:
        return [r for r in self.ROLES if getattr(self, f"is_{r}")]

    @roles.setter
    def roles(self, names) -> None:
        unknown = set(names) - set(self.ROLES)
        if unknown:
            raise ValidationError(f"Unknown role(s): {', '.join(sorted(unknown))}. Known: {', '.join(self.ROLES)}.")
        for r in self.ROLES:
            setattr(self, f"is_{r}", r in names)

    @property
    def effective_credential(self):
        return self.credential or self.cluster.credential

    @property
    def effective_catalina_base(self) -> str:
        return self.catalina_base or f"{self.install_path}/tomcat-base"

    @property
    def effective_catalina_home(self) -> str:
        return self.catalina_home or f"{self.install_path}/tomcat"

    def clean(self):
        if not self.roles:
            raise ValidationError("Give the node at least one role.")
        if self.is_app_server and not self.jvm_route:
            raise ValidationError({"jvm_route": "An app server needs a jvmRoute (e.g. node01)."})


class LayerMode(models.TextChoices):
    MANAGED = "managed", "Set it up for me"
    EXISTING = "existing", "I have it: verify only"


class SharedDirectory(models.Model):
    """The directory every app server mounts as wflow home (Cluster.wflow_home)."""

    cluster = models.OneToOneField(Cluster, on_delete=models.CASCADE, related_name="shared_directory")
    mode = models.CharField(max_length=10, choices=LayerMode.choices, default=LayerMode.MANAGED)
    node = models.ForeignKey(
        Node, null=True, blank=True, on_delete=models.RESTRICT, related_name="+", help_text="The NFS server."
    )
    export_path = models.CharField(max_length=255, default="/export/wflow", validators=[v.validate_absolute_path])
    client_subnet = models.CharField(max_length=64, blank=True, validators=[v.validate_cidr])

    def __str__(self):
        return f"shared directory of {self.cluster}"

    def clean(self):
        if self.mode == LayerMode.MANAGED and not self.node_id:
            raise ValidationError({"node": "Managed NFS needs a file-server node."})
        if self.mode == LayerMode.MANAGED and not self.client_subnet:
            raise ValidationError({"client_subnet": "Managed NFS exports to a subnet, e.g. 10.0.0.0/24."})


class SharedDatabase(models.Model):
    class Engine(models.TextChoices):
        MYSQL = "mysql", "MySQL"
        MARIADB = "mariadb", "MariaDB"

    cluster = models.OneToOneField(Cluster, on_delete=models.CASCADE, related_name="shared_database")
    mode = models.CharField(max_length=10, choices=LayerMode.choices, default=LayerMode.MANAGED)
    node = models.ForeignKey(Node, null=True, blank=True, on_delete=models.RESTRICT, related_name="+")
    host = models.CharField(
        max_length=253, blank=True, validators=[v.validate_address],
        help_text="Address the app servers connect to; empty: the node's address.",
    )
    engine = models.CharField(max_length=10, choices=Engine.choices, default=Engine.MARIADB)
    port = models.PositiveIntegerField(default=3306, validators=[v.validate_port])
    name = models.CharField(max_length=64, default="jwdb", validators=[v.validate_db_identifier])
    user = models.CharField(max_length=32, default="joget", validators=[v.validate_db_user])
    password = EncryptedTextField(validators=[v.validate_password])

    def __str__(self):
        return f"{self.name} on {self.connect_host}"

    @property
    def connect_host(self) -> str:
        return self.host or (self.node.address if self.node_id else "")

    def clean(self):
        if not self.node_id and not self.host:
            raise ValidationError("Choose the database node, or give the host of an existing database.")
        if self.mode == LayerMode.MANAGED and not self.node_id:
            raise ValidationError({"node": "A managed database needs its node."})


class LoadBalancer(models.Model):
    cluster = models.OneToOneField(Cluster, on_delete=models.CASCADE, related_name="load_balancer")
    mode = models.CharField(max_length=10, choices=LayerMode.choices, default=LayerMode.MANAGED)
    node = models.ForeignKey(Node, null=True, blank=True, on_delete=models.RESTRICT, related_name="+")
    http_port = models.PositiveIntegerField("HTTP port", default=80, validators=[v.validate_port])
    site_name = models.CharField(max_length=64, default="jwsite", validators=[v.validate_site_name])
    sticky_cookie = models.CharField(max_length=64, default="JSESSIONID", validators=[v.validate_cookie_name])
    manager_allow = models.CharField(
        max_length=253, blank=True, validators=[v.validate_address],
        help_text="The only address allowed to reach balancer-manager (the console's).",
    )

    def __str__(self):
        return f"load balancer of {self.cluster}"

    def clean(self):
        if not self.node_id:
            raise ValidationError({"node": "Choose the balancer node."})


# ---- Node health: what the check cycle stores; the checks themselves are in nodes/health/ ------------------


class HealthState(models.TextChoices):
    OK = "ok", "OK"
    WARN = "warn", "Warning"
    BAD = "bad", "Failing"
    UNKNOWN = "unknown", "Unknown"


# A single check that could not run is grey; a node or layer summing up its checks shows it amber
# (something there could not be checked).
HEALTH_CSS = {HealthState.OK: "ok", HealthState.WARN: "warn", HealthState.BAD: "bad", HealthState.UNKNOWN: "neutral"}


def health_css(state: str, *, summary: bool = False) -> str:
    """The colour class (ok, warn, bad, neutral) of a health state; "" or an unknown value is neutral."""
    if summary and state == HealthState.UNKNOWN:
        return "warn"
    return HEALTH_CSS.get(state, "neutral")


class HealthNumbers(models.Model):
    """The numbers one check cycle measures on one node. Small integer columns on purpose: 30 days of
    samples at 30 s are ~86,000 rows per node, so every byte of a row counts ~43 MB at 500 nodes."""

    level = models.PositiveSmallIntegerField(default=0, help_text="0 ok, 1 warning or unknown, 2 failing.")
    up = models.BooleanField(default=False, help_text="Reachable over SSH and serving its role.")
    ssh_ms = models.PositiveSmallIntegerField(null=True, blank=True)
    http_ms = models.PositiveSmallIntegerField(null=True, blank=True)
    balancer_ms = models.PositiveSmallIntegerField(null=True, blank=True)
    db_ms = models.PositiveSmallIntegerField(null=True, blank=True)
    load_x100 = models.PositiveIntegerField(null=True, blank=True, help_text="1-minute load average × 100.")
    mem_pct = models.PositiveSmallIntegerField(null=True, blank=True)
    disk_pct = models.PositiveSmallIntegerField(null=True, blank=True)
    wflow_free_mb = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        abstract = True


class HealthSample(HealthNumbers):
    """One row per node per cycle. The primary key (node, time) is the only index: every history
    query is one node's time range, and the pruning deletes one node's oldest range at a time."""

    pk = models.CompositePrimaryKey("node", "time")
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="+", db_index=False)
    time = models.DateTimeField()

    def __str__(self):
        return f"sample of node {self.node_id} at {self.time:%Y-%m-%d %H:%M:%S}"


class NodeHealth(HealthNumbers):
    """The latest cycle's numbers and details of one node: what the cluster page reads instead of samples."""

    node = models.OneToOneField(Node, on_delete=models.CASCADE, primary_key=True, related_name="health")
    checked_at = models.DateTimeField()
    details = models.JSONField(default=dict, blank=True)

    def __str__(self):
        return f"health of node {self.node_id}"


class CheckState(models.Model):
    """The current state of one check: written only when the state changes (its `since`)."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="check_states")
    node = models.ForeignKey(Node, null=True, blank=True, on_delete=models.CASCADE, related_name="check_states")
    key = models.CharField(max_length=32, help_text="Which check (nodes.health.CHECKS).")
    state = models.CharField(max_length=8, choices=HealthState.choices)
    since = models.DateTimeField()
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["cluster", "node", "key"]
        constraints = [
            models.UniqueConstraint(fields=["node", "key"], condition=models.Q(node__isnull=False),
                                    name="check_state_unique_per_node"),
            models.UniqueConstraint(fields=["cluster", "key"], condition=models.Q(node__isnull=True),
                                    name="check_state_unique_per_cluster"),
        ]

    def __str__(self):
        return f"{self.node or self.cluster} {self.key}: {self.state}"


class HealthEvent(models.Model):
    """A check changed state."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="health_events")
    node = models.ForeignKey(Node, null=True, blank=True, on_delete=models.CASCADE, related_name="health_events")
    key = models.CharField(max_length=32, help_text="Which check (nodes.health.CHECKS).")
    time = models.DateTimeField()
    old_state = models.CharField(max_length=8, blank=True)
    new_state = models.CharField(max_length=8, choices=HealthState.choices)
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-time", "-id"]
        indexes = [models.Index(fields=["cluster", "time"], name="health_event_cluster_time")]

    def __str__(self):
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.node or self.cluster} {self.key}: {self.old_state} -> " \
               f"{self.new_state}"


class HealthRun(models.Model):
    """The check cycle of one cluster: a lease (one cycle at a time) and the last cycle's timing."""

    cluster = models.OneToOneField(Cluster, on_delete=models.CASCADE, primary_key=True, related_name="health_run")
    lease_until = models.DateTimeField(null=True, blank=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    nodes = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    def __str__(self):
        return f"health cycle of cluster {self.cluster_id}"


class CatalinaTail(models.Model):
    """The tail of a node's catalina.out, fetched on demand by a worker."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="catalina_tails")
    lines = models.PositiveIntegerField(default=200)
    requested_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    path = models.CharField(max_length=300, blank=True)
    text = models.TextField(blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self):
        return f"catalina.out of node {self.node_id} requested {self.requested_at:%Y-%m-%d %H:%M:%S}"


class AuditQuerySet(models.QuerySet):
    # Bulk update()/delete() would bypass the model's own refusal: refuse here too.
    def update(self, **kwargs):
        raise PermissionError("The audit trail is append-only: audit events cannot be changed.")

    def delete(self):
        raise PermissionError("The audit trail is append-only: audit events cannot be deleted.")

    update.queryset_only = True
    delete.queryset_only = True


class AuditEvent(models.Model):
    """Who did what, when, from where: append-only. Written by nodes.audit.record, never edited.

    The actor's user name and the cluster's name are copied, so deleting a user or a
    cluster keeps its history readable. `details` never holds a secret.
    """

    class Action(models.TextChoices):
        LOGIN = "login", "Logged in"
        LOGIN_FAILED = "login_failed", "Login failed"
        LOGIN_LOCKED_OUT = "login_locked_out", "Login locked out"
        LOGOUT = "logout", "Logged out"
        CLUSTER_CREATED = "cluster_created", "Cluster created"
        CLUSTER_CHANGED = "cluster_changed", "Cluster changed"
        CLUSTER_DELETED = "cluster_deleted", "Cluster deleted"
        NODE_CREATED = "node_created", "Node created"
        NODE_CHANGED = "node_changed", "Node changed"
        NODE_DELETED = "node_deleted", "Node deleted"
        LAYER_CREATED = "layer_created", "Shared layer created"
        LAYER_CHANGED = "layer_changed", "Shared layer changed"
        CREDENTIAL_CREATED = "credential_created", "Credential created"
        CREDENTIAL_GENERATED = "credential_generated", "Key pair generated"
        INVENTORY_IMPORTED = "inventory_imported", "Inventory imported"
        INVENTORY_EXPORTED = "inventory_exported", "Inventory exported with secrets"
        ARTIFACT_UPLOADED = "artifact_uploaded", "Artifact uploaded"
        CHECKLIST_RUN = "checklist_run", "Prerequisite checklist run"
        DEPLOYMENT_STARTED = "deployment_started", "Deployment started"
        DEPLOYMENT_RETRIED = "deployment_retried", "Deployment step retried"
        DEPLOYMENT_RESUMED = "deployment_resumed", "Deployment resumed"
        DEPLOYMENT_CANCELLED = "deployment_cancelled", "Deployment cancelled"
        LICENSE_ACTIVATED = "license_activated", "License activation"
        HOST_KEY_CONFIRMED = "host_key_confirmed", "Host key confirmed"
        HOST_KEY_MISMATCH = "host_key_mismatch", "Host key mismatch"
        SECRETS_ROTATED = "secrets_rotated", "Secrets re-encrypted"
        API_TOKEN_CREATED = "api_token_created", "API token created"
        API_TOKEN_REVOKED = "api_token_revoked", "API token revoked"
        NODE_REMOVED = "node_removed", "App server removed from the cluster"
        LICENSE_NEEDED = "license_needed", "License needed"

    time = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    username = models.CharField(max_length=150, blank=True, db_index=True,
                                help_text="Copied from the actor (or the name tried at a failed login).")
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    cluster = models.CharField(max_length=63, blank=True, db_index=True, help_text="The cluster's name, copied.")
    target = models.CharField("object", max_length=255, blank=True)
    details = models.TextField(blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-time", "-id"]
        # Only "view": no add/change/delete permission exists for anyone to be granted.
        default_permissions = ("view",)

    def __str__(self):
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.username or '-'} {self.action} {self.target}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError("The audit trail is append-only: audit events cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("The audit trail is append-only: audit events cannot be deleted.")
