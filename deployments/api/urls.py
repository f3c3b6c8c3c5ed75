"""/api/v1/: the REST API, its OpenAPI schema and its docs page (Swagger UI from the sidecar's static files)."""

from django.contrib.auth.decorators import login_not_required
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import backup_views, operation_views, views

app_name = "api"


def _api(view):
    # The API answers 401 itself (Bearer or session): the login redirect is for pages.
    return login_not_required(view)


urlpatterns = [
    path("clusters/", _api(views.cluster_list), name="cluster_list"),
    path("clusters/<slug:name>/", _api(views.cluster_detail), name="cluster_detail"),
    path("clusters/<slug:name>/health/", _api(views.cluster_health), name="cluster_health"),
    path("clusters/<slug:name>/nodes/", _api(views.cluster_nodes), name="cluster_nodes"),
    path("clusters/<slug:name>/nodes/<slug:node>/", _api(views.node_detail), name="node_detail"),
    path("clusters/<slug:name>/deployments/", _api(views.cluster_deployments), name="cluster_deployments"),
    path("clusters/<slug:name>/artifacts/", _api(views.cluster_artifacts), name="cluster_artifacts"),
    path("clusters/<slug:name>/checklist/", _api(views.cluster_checklist), name="cluster_checklist"),
    path("clusters/<slug:name>/system-keys/", _api(views.system_keys), name="system_keys"),
    path("clusters/<slug:name>/backups/", _api(backup_views.cluster_backups), name="cluster_backups"),
    path("clusters/<slug:name>/backups/<slug:backup_id>/", _api(backup_views.backup_detail), name="backup_detail"),
    path("clusters/<slug:name>/backups/<slug:backup_id>/restore/", _api(backup_views.backup_restore),
         name="backup_restore"),
    path("clusters/<slug:name>/drift/", _api(backup_views.cluster_drift), name="cluster_drift"),
    path("clusters/<slug:name>/operations/restart/", _api(operation_views.cluster_restart), name="cluster_restart"),
    path("clusters/<slug:name>/operations/upgrade/", _api(operation_views.cluster_upgrade), name="cluster_upgrade"),
    path("clusters/<slug:name>/operations/rollback/", _api(operation_views.cluster_rollback), name="cluster_rollback"),
    path("clusters/<slug:name>/operations/add-node/", _api(operation_views.cluster_add_node), name="cluster_add_node"),
    path("clusters/<slug:name>/operations/remove-node/", _api(operation_views.cluster_remove_node),
         name="cluster_remove_node"),
    path("clusters/<slug:name>/members/", _api(operation_views.cluster_members), name="cluster_members"),
    path("clusters/<slug:name>/nodes/<slug:node>/member/", _api(operation_views.node_member_state),
         name="node_member_state"),
    path("deployments/<int:pk>/", _api(views.deployment_detail), name="deployment_detail"),
    path("deployments/<int:pk>/log/", _api(views.deployment_log), name="deployment_log"),
    path("deployments/<int:pk>/cancel/", _api(views.deployment_cancel), name="deployment_cancel"),
    path("deployments/<int:pk>/resume/", _api(views.deployment_resume), name="deployment_resume"),
    path("deployments/<int:pk>/retry/", _api(views.deployment_retry), name="deployment_retry"),
    path("checklist-runs/<int:pk>/", _api(views.checklist_detail), name="checklist_detail"),
    path("schema/", _api(SpectacularAPIView.as_view()), name="schema"),
    path("docs/", _api(SpectacularSwaggerSplitView.as_view(url_name="api:schema")), name="docs"),
]
