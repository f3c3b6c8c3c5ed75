"""Licensing: each app server's system key as read from that server, and the license pasted back for it."""

from django.db import models
from django.urls import reverse

from joget_cluster.crypto import EncryptedTextField
from nodes.models import Node


class License(models.Model):
    """One app server's licensing state.

    `state` is derived from the other fields by `services.derive_state()` whenever they change:
    the key that was read, the key a license was requested or pasted for, and the key it was
    activated for. A license string is a secret (encrypted here, masked in logs, never shown whole).
    """

    class State(models.TextChoices):
        NO_KEY = "no_key", "no key yet"
        KEY_READ = "key_read", "key read"
        REQUESTED = "requested", "license requested"
        ACTIVATED = "activated", "activated"
        KEY_CHANGED = "key_changed", "key changed"
        REFUSED = "refused", "license refused"

    # Its colour wherever a license's state is shown (the licensing page, the wizard's Licenses step).
    STATE_CSS = {State.ACTIVATED: "ok", State.KEY_CHANGED: "bad", State.REFUSED: "bad", State.REQUESTED: "warn",
                 State.KEY_READ: "running", State.NO_KEY: "neutral"}

    class Busy(models.TextChoices):
        IDLE = "", "idle"
        READING = "reading", "reading the key"
        ACTIVATING = "activating", "activating"

    # Named `node` and `license_text`: nodes.secrets.cluster_secrets() masks these strings in logs.
    node = models.OneToOneField(Node, on_delete=models.CASCADE, related_name="license")
    state = models.CharField(max_length=16, choices=State.choices, default=State.NO_KEY)

    # The last successful reading.
    system_key = models.CharField(max_length=128, blank=True)
    key_read_at = models.DateTimeField(null=True, blank=True)
    key_url = models.CharField(max_length=600, blank=True, help_text="Where the key was read: the node itself.")
    key_profile = models.CharField(max_length=64, blank=True, help_text="Datasource profile the key was read with.")
    key_profile_assumed = models.BooleanField(
        default=False, help_text="The profile could not be read from the node: the cluster's setting was recorded."
    )
    licensed_on_node = models.BooleanField(null=True, blank=True, help_text="What the License page said; empty: "
                                           "its status could not be recognised.")
    previous_key = models.CharField(max_length=128, blank=True)
    key_changed_at = models.DateTimeField(null=True, blank=True)

    # The last attempt (successful or not).
    checked_at = models.DateTimeField(null=True, blank=True)
    read_error = models.TextField(blank=True)
    raw_page = models.TextField(blank=True, help_text="The page as received when no key could be extracted.")

    # The license.
    requested_key = models.CharField(max_length=128, blank=True)
    requested_at = models.DateTimeField(null=True, blank=True)
    license_text = EncryptedTextField(blank=True)
    license_for_key = models.CharField(max_length=128, blank=True, help_text="The key when the license was pasted.")
    license_saved_at = models.DateTimeField(null=True, blank=True)
    activated_key = models.CharField(max_length=128, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    activation_error = models.TextField(blank=True)
    # The node refused the last license pasted: it was not kept (the error says why, masked).
    license_refused = models.BooleanField(default=False)
    activation_tried_at = models.DateTimeField(null=True, blank=True)
    # The node left the cluster (scale in): its license is free, the row kept for the record.
    released_at = models.DateTimeField(null=True, blank=True)
    # The node was added to a serving cluster (scale out): what the Licenses page says until it is activated.
    joined_note = models.CharField(max_length=500, blank=True)

    # A read or an activation is queued or running (claimed atomically; see services).
    busy = models.CharField(max_length=12, choices=Busy.choices, default=Busy.IDLE, blank=True)
    busy_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["node__cluster", "node__name"]

    def __str__(self):
        return f"license of {self.node.name}"

    def get_absolute_url(self):
        return reverse("licensing:cluster_licenses", args=[self.node.cluster.name])

    @property
    def state_css(self) -> str:
        return self.STATE_CSS.get(self.state, "neutral")

    @property
    def license_masked(self) -> str:
        from .services import mask_license

        return mask_license(self.license_text)
