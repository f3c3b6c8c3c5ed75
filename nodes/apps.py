from django.apps import AppConfig


class NodesConfig(AppConfig):
    name = "nodes"
    verbose_name = "Inventory"

    def ready(self):
        from .audit import receivers  # noqa: F401 - connects the login/logout receivers of the audit trail
