from django.urls import path

from . import views

app_name = "licensing"

urlpatterns = [
    path("clusters/<slug:name>/licenses/", views.cluster_licenses, name="cluster_licenses"),
    path("clusters/<slug:name>/licenses/read/", views.read_keys, name="read_keys"),
    path("clusters/<slug:name>/licenses/requested/", views.mark_requested, name="mark_requested"),
    path("clusters/<slug:name>/licenses/system-keys.csv", views.export_csv, name="export_csv"),
    path("clusters/<slug:name>/licenses/license-request.txt", views.export_request, name="export_request"),
    path("clusters/<slug:name>/licenses/<slug:node>/activate/", views.activate, name="activate"),
]
