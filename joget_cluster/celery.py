import os

from celery import Celery

from . import broker  # noqa: F401 - registers the filesystem transport that writes messages atomically

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "joget_cluster.settings")

app = Celery("joget_cluster")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
