from django import forms

from .models import Cluster, Credential, LoadBalancer, Node, SharedDatabase, SharedDirectory
from .ssh import SSHError, load_private_key


class ClusterForm(forms.ModelForm):
    joget_admin_password = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False),
        help_text="Joget console admin password, for reading system keys. Empty keeps the stored one.",
    )

    class Meta:
        model = Cluster
        fields = ["name", "joget_version", "context_path", "wflow_home", "datasource_profile", "multicast",
                  "synchronous_replication", "roll_batch", "credential", "joget_admin_user", "joget_admin_password"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["roll_batch"].required = False  # empty: one app server at a time

    def clean_roll_batch(self):
        return self.cleaned_data.get("roll_batch") or 1

    @property
    def changed_data(self):
        # An empty batch means one at a time, the default: not a change to audit when it was 1 already.
        changed = super().changed_data
        if "roll_batch" in changed and self.is_bound and hasattr(self, "cleaned_data") \
                and self.cleaned_data.get("roll_batch") == self.initial.get("roll_batch", 1):
            changed = [name for name in changed if name != "roll_batch"]
        return changed

    def clean_joget_admin_password(self):
        value = self.cleaned_data["joget_admin_password"]
        return value or (self.instance.joget_admin_password if self.instance.pk else "")

    def saved_note(self) -> str:
        """What became of the password, after save: an empty field keeps the stored one, or stores none."""
        if self.data.get(self.add_prefix("joget_admin_password")):
            return "Joget admin password stored."
        if self.instance.joget_admin_password:
            return "Joget admin password unchanged."
        return "No Joget admin password is stored: system keys cannot be read until one is set."


class NodeForm(forms.ModelForm):
    roles = forms.MultipleChoiceField(
        choices=[(r, r.replace("_", " ")) for r in Node.ROLES], widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = Node
        fields = ["name", "address", "roles", "ssh_port", "ssh_user", "credential", "jvm_route", "http_port",
                  "install_path", "catalina_home", "catalina_base"]

    def __init__(self, *args, cluster, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.cluster = cluster
        if self.instance.pk:
            self.initial["roles"] = self.instance.roles

    def clean(self):
        data = super().clean()
        if "roles" in data:
            self.instance.roles = data["roles"]
        return data

    def validate_unique(self):
        super().validate_unique()
        qs = Node.objects.filter(cluster=self.instance.cluster).exclude(pk=self.instance.pk)
        name, route = self.cleaned_data.get("name"), self.cleaned_data.get("jvm_route")
        if name and qs.filter(name=name).exists():
            self.add_error("name", "A node with this name is already in the cluster.")
        if route and qs.filter(jvm_route=route).exists():
            self.add_error("jvm_route", "Another app server in this cluster uses this jvmRoute.")


class _LayerForm(forms.ModelForm):
    def __init__(self, *args, cluster, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.cluster = cluster
        if "node" in self.fields:
            self.fields["node"].queryset = cluster.nodes.all()


class SharedDirectoryForm(_LayerForm):
    class Meta:
        model = SharedDirectory
        fields = ["mode", "node", "export_path", "client_subnet"]


class SharedDatabaseForm(_LayerForm):
    password = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False),
        help_text="Empty keeps the stored password.", strip=False,
    )

    class Meta:
        model = SharedDatabase
        fields = ["mode", "node", "host", "engine", "port", "name", "user", "password"]

    def clean_password(self):
        value = self.cleaned_data["password"] or (self.instance.password if self.instance.pk else "")
        if not value:
            raise forms.ValidationError("Set the database user's password.")
        return value


class LoadBalancerForm(_LayerForm):
    class Meta:
        model = LoadBalancer
        fields = ["mode", "node", "http_port", "site_name", "sticky_cookie", "manager_allow"]


class CredentialForm(forms.ModelForm):
    private_key = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 6}), strip=False)
    passphrase = forms.CharField(required=False, widget=forms.PasswordInput, strip=False)
    password = forms.CharField(required=False, widget=forms.PasswordInput, strip=False)

    class Meta:
        model = Credential
        fields = ["name", "kind", "private_key", "passphrase", "password"]

    def clean(self):
        data = super().clean()
        if data.get("kind") == Credential.Kind.KEY and data.get("private_key"):
            try:
                key = load_private_key(data["private_key"], data.get("passphrase", ""))
            except SSHError as exc:
                self.add_error("private_key", str(exc))
            else:
                self.instance.public_key = f"{key.get_name()} {key.get_base64()}"
        return data

    def saved_note(self) -> str:
        if self.instance.kind == Credential.Kind.PASSWORD:
            return "SSH password stored."
        return "Private key stored" + (", with its passphrase." if self.instance.passphrase else ".")


class GenerateKeyForm(forms.Form):
    name = forms.CharField(max_length=63)

    def clean_name(self):
        from .validators import validate_name

        name = self.cleaned_data["name"]
        validate_name(name)
        if Credential.objects.filter(name=name).exists():
            raise forms.ValidationError("A credential with this name exists.")
        return name


# An inventory is a few KB even for hundreds of nodes; the document is parsed in memory.
INVENTORY_MAX_BYTES = 1024 * 1024


class InventoryUploadForm(forms.Form):
    file = forms.FileField(help_text="An inventory JSON document (see docs/inventory.md). It may not name files "
                                     "on the console machine: upload the key here and the artifacts in the wizard.")
    identity = forms.FileField(
        required=False, label="SSH private key",
        help_text="Optional: the key the console logs in to the nodes with, stored encrypted as the cluster's "
                  "credential.")
    replace = forms.BooleanField(required=False, help_text="Recreate the cluster if it exists.")

    def clean_identity(self):
        key = self.cleaned_data["identity"]
        if not key:
            return ""
        if key.size > 64 * 1024:  # an OpenSSH key is a few KB at most
            raise forms.ValidationError("This is too large for an SSH private key.")
        try:
            text = key.read().decode()
            load_private_key(text)
        except UnicodeDecodeError:
            raise forms.ValidationError("This is not an SSH private key (not text).") from None
        except SSHError as exc:
            raise forms.ValidationError(str(exc)) from None
        return text

    def clean_file(self):
        from joget_cluster.uploads import too_large

        upload = self.cleaned_data["file"]
        if upload.size > INVENTORY_MAX_BYTES:
            raise forms.ValidationError(too_large("inventory document", INVENTORY_MAX_BYTES))
        return upload
