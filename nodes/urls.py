from django.urls import path

from . import status_views, views
from .audit import views as audit_views

app_name = "nodes"

# The cluster overview (clusters/<name>/, name cluster_detail) shows every app's part of a cluster: its view is
# deployments.overview, added to this namespace by joget_cluster/urls.py.

urlpatterns = [
    path("", views.cluster_list, name="cluster_list"),
    path("clusters/new/", views.cluster_create, name="cluster_create"),
    path("clusters/import/", views.cluster_import, name="cluster_import"),
    path("clusters/<slug:name>/edit/", views.cluster_edit, name="cluster_edit"),
    path("clusters/<slug:name>/delete/", views.cluster_delete, name="cluster_delete"),
    path("clusters/<slug:name>/layers/<slug:layer>/", views.layer_edit, name="layer_edit"),
    path("clusters/<slug:name>/nodes/new/", views.node_create, name="node_create"),
    path("clusters/<slug:name>/nodes/<slug:node>/", views.node_detail, name="node_detail"),
    path("clusters/<slug:name>/nodes/<slug:node>/edit/", views.node_edit, name="node_edit"),
    path("clusters/<slug:name>/nodes/<slug:node>/delete/", views.node_delete, name="node_delete"),
    path("clusters/<slug:name>/nodes/<slug:node>/connect/", views.node_connect, name="node_connect"),
    path("clusters/<slug:name>/nodes/<slug:node>/host-key/", views.node_host_key, name="node_host_key"),
    path("clusters/<slug:name>/nodes/<slug:node>/host-key/confirm/", views.node_confirm_host_key,
         name="node_confirm_host_key"),
    path("clusters/<slug:name>/nodes/<slug:node>/probe/", views.node_probe, name="node_probe"),
    path("clusters/<slug:name>/nodes/<slug:node>/facts/", views.node_facts, name="node_facts"),
    path("credentials/", views.credential_list, name="credential_list"),
    path("credentials/new/", views.credential_create, name="credential_create"),
    path("credentials/generate/", views.credential_generate, name="credential_generate"),
    path("audit/", audit_views.audit_list, name="audit_list"),
    # Status pages.
    path("clusters/<slug:name>/status/", status_views.cluster_status, name="cluster_status"),
    path("clusters/<slug:name>/status/body/", status_views.cluster_status_body, name="cluster_status_body"),
    path("clusters/<slug:name>/status/check/", status_views.cluster_check_now, name="cluster_check_now"),
    path("clusters/<slug:name>/nodes/<slug:node>/status/", status_views.node_status, name="node_status"),
    path("clusters/<slug:name>/nodes/<slug:node>/status/checks/", status_views.node_status_checks,
         name="node_status_checks"),
    path("clusters/<slug:name>/nodes/<slug:node>/status/catalina/", status_views.node_catalina_request,
         name="node_catalina_request"),
    path("clusters/<slug:name>/nodes/<slug:node>/status/catalina/<int:tail_id>/", status_views.node_catalina_tail,
         name="node_catalina_tail"),
]

