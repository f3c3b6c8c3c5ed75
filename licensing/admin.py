from django.contrib import admin

from .models import License


@admin.register(License)
class LicenseAdmin(admin.ModelAdmin):
    list_display = ["node", "state", "system_key", "key_read_at", "key_profile"]
    list_filter = ["state", "node__cluster"]
    # The license string is a secret: never shown back, not even to the admin site.
    exclude = ["license_text"]
    readonly_fields = ["license_masked", "system_key", "key_read_at", "key_url", "key_profile", "previous_key",
                       "key_changed_at", "raw_page", "checked_at", "read_error"]

    @admin.display(description="license")
    def license_masked(self, obj):
        return obj.license_masked or "—"
