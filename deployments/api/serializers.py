"""What the API answers, field by field. Read-only views of the models: no secret (SSH key, password,
license text) is a field of any of them. Input is validated by the console's own forms (nodes) or by
the small request serializers at the end."""

from __future__ import annotations

from rest_framework import serializers

from nodes.models import Artifact, Cluster, LoadBalancer, Node, SharedDatabase, SharedDirectory
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
                  "install_path", "catalina_home", "catalina_base", "host_key_fingerprint", "host_key_confirmed_at",
                  "created"]

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


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)


class ConflictSerializer(ErrorSerializer):
    running_deployment = serializers.IntegerField(required=False)
