"""What the API answers, field by field. Read-only views of the models: no secret (SSH key, password,
license text) is a field of any of them. Input is validated by the console's own forms (nodes) or by
the small request serializers at the end."""

from __future__ import annotations

from rest_framework import serializers

from nodes import validators as v
from nodes.models import Artifact, BalancerState, Cluster, LoadBalancer, Node, SharedDatabase, SharedDirectory
from nodes.ssh import SSHError, fingerprint

from ..models import CheckResult, CheckRun, Deployment, StepRun


class ClusterSerializer(serializers.ModelSerializer):
    nodes = serializers.IntegerField(source="node_count", read_only=True)

    class Meta:
        model = Cluster
        fields = ["name", "public_id", "joget_version", "context_path", "wflow_home", "datasource_profile",
                  "multicast", "nodes", "created"]


class NodeSerializer(serializers.ModelSerializer):
    roles = serializers.ListField(child=serializers.ChoiceField(choices=Node.ROLES), read_only=True)
    credential = serializers.SlugRelatedField(slug_field="name", read_only=True)
    host_key_fingerprint = serializers.SerializerMethodField()

    class Meta:
        model = Node
        fields = ["name", "address", "roles", "ssh_port", "ssh_user", "credential", "jvm_route", "http_port",
                  "install_path", "catalina_home", "catalina_base", "balancer_state", "host_key_fingerprint",
                  "host_key_confirmed_at", "created"]
        extra_kwargs = {"balancer_state": {"read_only": True, "help_text": "An app server's member state in the "
                                           "load balancer as the console keeps it (change it at .../member/)."}}

    def get_host_key_fingerprint(self, node) -> str | None:
        try:
            return fingerprint(node.host_key) if node.host_key else None
        except SSHError:
            return None  # not a key line: the node page says so; a list must not fail on it


class _LayerSerializer(serializers.ModelSerializer):
    node = serializers.SlugRelatedField(slug_field="name", read_only=True)


class SharedDirectorySerializer(_LayerSerializer):
    class Meta:
        model = SharedDirectory
        fields = ["mode", "node", "export_path", "client_subnet"]


class SharedDatabaseSerializer(_LayerSerializer):
    class Meta:
        model = SharedDatabase
        fields = ["mode", "node", "host", "engine", "port", "name", "user"]  # never the password


class LoadBalancerSerializer(_LayerSerializer):
    class Meta:
        model = LoadBalancer
        fields = ["mode", "node", "http_port", "site_name", "sticky_cookie", "manager_allow"]


class LayerHealthSerializer(serializers.Serializer):
    state = serializers.CharField(source="css", help_text="ok, warn, bad or neutral (not checked yet).")
    label = serializers.CharField()
    detail = serializers.CharField()


class LayersSerializer(serializers.Serializer):
    shared_directory = SharedDirectorySerializer(allow_null=True)
    shared_database = SharedDatabaseSerializer(allow_null=True)
    load_balancer = LoadBalancerSerializer(allow_null=True)


class RecapSerializer(serializers.Serializer):
    changed = serializers.IntegerField()
    ok = serializers.IntegerField()
    failed = serializers.IntegerField()
    skipped = serializers.IntegerField()


class DeploymentSerializer(serializers.ModelSerializer):
    cluster = serializers.SlugRelatedField(slug_field="name", read_only=True)
    started_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    recap = serializers.SerializerMethodField()

    class Meta:
        model = Deployment
        fields = ["id", "cluster", "operation", "options", "status", "dry_run", "steps", "started_by",
                  "cancel_requested", "created", "finished", "recap"]

    def get_recap(self, dep) -> RecapSerializer:
        return dep.recap()


class StepRunSerializer(serializers.ModelSerializer):
    node = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = StepRun
        fields = ["id", "step", "position", "wave", "node", "status", "exit_code", "message", "hint", "changes",
                  "attempt", "started", "finished"]


class DeploymentDetailSerializer(DeploymentSerializer):
    runs = StepRunSerializer(many=True, read_only=True)

    class Meta(DeploymentSerializer.Meta):
        fields = [*DeploymentSerializer.Meta.fields, "runs"]


class LogLineSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The cursor: ask again with ?after=<the last id>.")
    run = serializers.IntegerField(source="run_id")
    step = serializers.CharField(source="run.step")
    node = serializers.CharField(source="run.node.name", allow_null=True, default=None)
    seq = serializers.IntegerField()
    stream = serializers.CharField()
    text = serializers.CharField()
    time = serializers.DateTimeField()


class LogPageSerializer(serializers.Serializer):
    lines = LogLineSerializer(many=True)
    next_after = serializers.IntegerField(help_text="Pass as ?after= to get the lines that follow these.")
    more = serializers.BooleanField(help_text="More lines are stored already: ask again at once.")
    finished = serializers.BooleanField(help_text="The deployment has ended and every stored line was sent.")
    status = serializers.CharField()


class CheckResultSerializer(serializers.ModelSerializer):
    node = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = CheckResult
        fields = ["item", "node", "status", "found", "fix", "finished"]


class CheckRunSerializer(serializers.ModelSerializer):
    cluster = serializers.SlugRelatedField(slug_field="name", read_only=True)
    started_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    results = CheckResultSerializer(many=True, read_only=True)

    class Meta:
        model = CheckRun
        fields = ["id", "cluster", "status", "started_by", "created", "finished", "results"]


class SystemKeySerializer(serializers.Serializer):
    cluster = serializers.CharField()
    node = serializers.CharField()
    address = serializers.CharField()
    http_port = serializers.IntegerField()
    jvm_route = serializers.CharField()
    system_key = serializers.CharField(allow_null=True)
    read_at = serializers.CharField(allow_null=True)
    profile = serializers.CharField(allow_null=True)
    state = serializers.CharField()


class NodeHealthSerializer(serializers.Serializer):
    name = serializers.CharField()
    address = serializers.CharField()
    state = serializers.CharField(help_text="ok, warn, bad, unknown, or none (not checked yet).")
    since = serializers.DateTimeField(allow_null=True)
    problems = serializers.ListField(child=serializers.DictField())


class HealthSerializer(serializers.Serializer):
    overall = serializers.CharField(help_text="ok, warn, bad or neutral (nothing checked yet).")
    layers = serializers.DictField(child=LayerHealthSerializer())
    nodes = NodeHealthSerializer(many=True)


class ClusterDetailSerializer(ClusterSerializer):
    layers = LayersSerializer()
    health = serializers.DictField(child=LayerHealthSerializer(), source="layer_health")
    latest_deployment = DeploymentSerializer(allow_null=True)
    checklist = serializers.DictField(source="checklist_summary")

    class Meta(ClusterSerializer.Meta):
        fields = [*ClusterSerializer.Meta.fields, "layers", "health", "latest_deployment", "checklist"]


# -- backups, restores, drift --------------------------------------------------------------------------------

class BackupPartSerializer(serializers.Serializer):
    size = serializers.IntegerField(allow_null=True)
    sha256 = serializers.CharField(allow_null=True)


class BackupSerializer(serializers.Serializer):
    """A backup as `manage.py backups --format json` shows it (backups.summary), and the run that made it."""

    id = serializers.CharField(help_text="The backup's id (time and a suffix): the name to restore it by.")
    state = serializers.ChoiceField(choices=["running", "complete", "failed"])
    created = serializers.DateTimeField()
    finished = serializers.DateTimeField(allow_null=True)
    reason = serializers.ChoiceField(choices=["on_demand", "scheduled", "before_operation"])
    note = serializers.CharField()
    size = serializers.IntegerField(help_text="Bytes, all parts together.")
    parts = serializers.DictField(child=BackupPartSerializer(),
                                  help_text="database, files, desired_state, manifest: size and sha256 of each.")
    joget_version = serializers.CharField()
    deployment = serializers.IntegerField(allow_null=True, help_text="The run (deployment) that made it.")


class RestoreSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    backup = serializers.CharField(source="backup.backup_id")
    deployment = serializers.IntegerField(source="deployment_id", help_text="The run: follow it at /deployments/{id}/.")
    exact = serializers.BooleanField()
    pre_backup = serializers.CharField(help_text="The backup taken first in the same run, if the cluster's "
                                                 "setting asks for one.")
    created = serializers.DateTimeField()


class DriftFindingSerializer(serializers.Serializer):
    step = serializers.CharField()
    node = serializers.CharField(help_text="A node's name, or 'cluster'.")
    description = serializers.CharField()
    diff = serializers.CharField()


class DriftCheckSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    state = serializers.ChoiceField(choices=["running", "clean", "drifted", "failed"],
                                    help_text="failed: the check could not probe everything (see the findings).")
    deployment = serializers.IntegerField(source="deployment_id", allow_null=True, help_text="The dry run it read.")
    created = serializers.DateTimeField()
    finished = serializers.DateTimeField(allow_null=True)
    drifted_steps = serializers.ListField(child=serializers.CharField(), help_text="What a repair would deploy.")
    findings = DriftFindingSerializer(many=True)


class DriftStartedSerializer(serializers.Serializer):
    deployment = serializers.IntegerField(help_text="The run: the check's dry run, or the repair.")
    drift_check = serializers.IntegerField(allow_null=True, help_text="The new check; null for a repair.")
    steps = serializers.ListField(child=serializers.CharField(), help_text="A repair's steps; [] for a check.")


# -- requests ---------------------------------------------------------------------------------------------

class DeploymentStartSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField(default=False, help_text="Probe only: show what would change.")
    steps = serializers.ListField(child=serializers.CharField(max_length=64), required=False, default=list,
                                  help_text="Step keys to run; empty: the whole plan.")


class ArtifactSerializer(serializers.ModelSerializer):
    class Meta:
        model = Artifact
        fields = ["kind", "original_name", "size", "sha256", "uploaded"]


class ArtifactUploadSerializer(serializers.Serializer):
    """multipart/form-data (documentation only: the wizard's upload form validates it)."""

    kind = serializers.ChoiceField(choices=Artifact.Kind.choices)
    file = serializers.FileField()


class RetrySerializer(serializers.Serializer):
    step = serializers.CharField(max_length=64, help_text="The step to rerun where it failed.")


class NodeInputSerializer(serializers.Serializer):
    """The fields of the console's node form (documentation only: the form itself validates them)."""

    name = serializers.CharField()
    address = serializers.CharField()
    roles = serializers.ListField(child=serializers.ChoiceField(choices=Node.ROLES))
    ssh_port = serializers.IntegerField(required=False)
    ssh_user = serializers.CharField(required=False)
    credential = serializers.CharField(required=False, help_text="A credential's name; empty: the cluster's.")
    jvm_route = serializers.CharField(required=False)
    http_port = serializers.IntegerField(required=False)
    install_path = serializers.CharField(required=False)
    catalina_home = serializers.CharField(required=False)
    catalina_base = serializers.CharField(required=False)


class RestoreStartSerializer(serializers.Serializer):
    confirm = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=True,
                                    help_text="The cluster's name, typed: the app servers stop during a restore.")
    exact = serializers.BooleanField(default=False, help_text="Remove files of the shared directory not in the "
                                                              "backup.")


class DriftStartSerializer(serializers.Serializer):
    repair = serializers.BooleanField(default=False, help_text="Deploy only the steps the latest check found "
                                                               "drifted, instead of checking.")


# Day-2 operations: each starts a run and answers 201 with it (DeploymentSerializer). An operation's options
# are a serializer here; its view (operation_views.py) passes them on to its service.

class _BatchSerializer(serializers.Serializer):
    batch = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None,
                                     help_text="App servers restarted at once (default: the cluster's setting, else 1; "
                                               "always fewer than all).")


class RestartSerializer(_BatchSerializer):
    nodes = serializers.ListField(child=serializers.CharField(max_length=64), required=False, default=list,
                                  help_text="Only these app servers, by name; empty: every one.")


class RollbackSerializer(_BatchSerializer):
    pass


class UpgradeSerializer(_BatchSerializer):
    """multipart/form-data: the new jw.war and, optionally, the batch."""

    war = serializers.FileField(help_text="The new jw.war: the same Joget major version as the cluster's.")
    no_backup = serializers.BooleanField(default=False, help_text="Do not back the cluster up first this once (the "
                                                                  "cluster's setting, on by default, backs it up in "
                                                                  "the same run before any node is touched).")


class MemberStateSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=BalancerState.choices,
                                    help_text="enabled: serves; disabled: out of the balancer; drain: only its own "
                                              "sticky sessions (for clusters without session replication).")


class ReportedMemberSerializer(serializers.Serializer):
    status = serializers.CharField(help_text="Apache's words, e.g. \"Init Ok\", \"Init Dis Ok\", \"Init Drn Ok\".")
    state = serializers.ChoiceField(choices=BalancerState.choices, help_text="The state those words mean.")
    serving = serializers.BooleanField(help_text="Apache sends it new requests: enabled and not in error.")
    busy = serializers.IntegerField(allow_null=True, help_text="Requests in flight.")
    elected = serializers.IntegerField(allow_null=True)


class MemberSerializer(serializers.Serializer):
    node = serializers.CharField(source="node.name")
    jvm_route = serializers.CharField(source="node.jvm_route")
    state = serializers.ChoiceField(source="node.balancer_state", choices=BalancerState.choices,
                                    help_text="The state the console keeps (in the balancer's site file too).")
    reported = ReportedMemberSerializer(source="member", allow_null=True,
                                        help_text="What balancer-manager reports now; null when not read or not a "
                                                  "member.")


class MembersSerializer(serializers.Serializer):
    members = MemberSerializer(many=True)
    error = serializers.CharField(help_text="Why balancer-manager could not be read; empty when it was.")


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)


class ConflictSerializer(ErrorSerializer):
    running_deployment = serializers.IntegerField(required=False)


class AddNodeSerializer(serializers.Serializer):
    """The new app server: the validators of the cluster page's form (deployments.scale_views.AddNodeForm)."""

    name = serializers.CharField(max_length=63, validators=[v.validate_name])
    address = serializers.CharField(max_length=253, validators=[v.validate_address])
    ssh_port = serializers.IntegerField(required=False, default=22, validators=[v.validate_port])
    ssh_user = serializers.CharField(required=False, default="root", max_length=32, validators=[v.validate_posix_user])
    host_key = serializers.CharField(help_text="Its SSH host key, \"TYPE BASE64\" as ssh-keyscan prints it (pinned).")
    jvm_route = serializers.CharField(max_length=32, validators=[v.validate_jvm_route],
                                      help_text="Unique in the cluster; may be a removed node's (a replacement).")
    no_backup = serializers.BooleanField(default=False, help_text="Do not back the cluster up first this once.")


class RemoveNodeSerializer(serializers.Serializer):
    node = serializers.CharField(max_length=63, help_text="The app server to remove, by name.")
    no_backup = serializers.BooleanField(default=False, help_text="Do not back the cluster up first this once.")
