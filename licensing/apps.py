from django.apps import AppConfig


class LicensingConfig(AppConfig):
    name = "licensing"

    def ready(self):
        from nodes import secrets

        from .models import License

        # License texts are secrets of their cluster: masked in every log, diff and tail the console stores.
        secrets.register(lambda cluster: License.objects.filter(node__cluster=cluster).order_by()
                         .values_list("license_text"))
