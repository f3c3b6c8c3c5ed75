from django.contrib import admin

from .models import Cluster, Credential, LoadBalancer, Node, SharedDatabase, SharedDirectory


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "created"]
    # Secrets are never shown back, not even to the admin site.
    exclude = ["private_key", "passphrase", "password"]
    readonly_fields = ["public_key"]


class NodeInline(admin.TabularInline):
    model = Node
    fields = ["name", "address", "ssh_port", "ssh_user", "jvm_route", "is_app_server", "is_load_balancer",
              "is_database", "is_file_server"]
    extra = 0


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    list_display = ["name", "joget_version", "wflow_home", "created"]
    exclude = ["joget_admin_password"]
    inlines = [NodeInline]


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = ["name", "cluster", "address", "jvm_route", "roles_display"]
    list_filter = ["cluster"]
    readonly_fields = ["host_key", "host_key_confirmed_at", "facts", "facts_at"]

    @admin.display(description="roles")
    def roles_display(self, obj):
        return ", ".join(obj.roles)


admin.site.register(SharedDirectory)
admin.site.register(LoadBalancer)


@admin.register(SharedDatabase)
class SharedDatabaseAdmin(admin.ModelAdmin):
    exclude = ["password"]
