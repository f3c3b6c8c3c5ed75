from django.urls import path

from . import backup_views, joget_state_views, operate_views, scale_views, views, wizard
from .api import token_views

app_name = "deployments"

urlpatterns = [
    path("clusters/<slug:name>/deployments/", views.deployment_list, name="deployment_list"),
    path("clusters/<slug:name>/deployments/start/", views.deployment_start, name="deployment_start"),
    path("deployments/<int:pk>/", views.deployment_detail, name="deployment_detail"),
    path("deployments/<int:pk>/cancel/", views.deployment_cancel, name="deployment_cancel"),
    path("deployments/<int:pk>/resume/", views.deployment_resume, name="deployment_resume"),
    path("deployments/<int:pk>/retry/", views.deployment_retry, name="deployment_retry"),
    path("deployments/<int:pk>/runs/<int:run_pk>/log/", views.run_log, name="run_log"),
    path("deployments/<int:pk>/runs/<int:run_pk>/log.txt", views.run_log_download, name="run_log_download"),
    path("clusters/<slug:name>/members/", operate_views.members, name="members"),
    path("clusters/<slug:name>/members/<slug:node>/", operate_views.member_state, name="member_state"),
    path("clusters/<slug:name>/operate/<slug:operation>/", operate_views.operate, name="operate"),
    path("clusters/<slug:name>/scale/add/", scale_views.add_node, name="scale_add"),
    path("clusters/<slug:name>/scale/remove/", scale_views.remove_node, name="scale_remove"),
    path("clusters/<slug:name>/joget-records/", joget_state_views.records, name="joget_records"),
    path("clusters/<slug:name>/joget-records/read/", joget_state_views.records_read, name="joget_records_read"),
    path("clusters/<slug:name>/joget-records/remove/", joget_state_views.records_remove, name="joget_records_remove"),
    path("clusters/<slug:name>/checklist/", views.checklist, name="checklist"),
    path("clusters/<slug:name>/checklist/run/", views.checklist_run, name="checklist_run"),
    path("wizard/", wizard.wizard_start, name="wizard_start"),
    path("wizard/testbed/", wizard.wizard_import_testbed, name="wizard_import_testbed"),
    path("clusters/<slug:name>/wizard/", wizard.wizard_resume, name="wizard_resume"),
    path("clusters/<slug:name>/wizard/connect-all/", wizard.wizard_connect_all, name="wizard_connect_all"),
    path("clusters/<slug:name>/wizard/upload/", wizard.wizard_upload, name="wizard_upload"),
    path("clusters/<slug:name>/wizard/<slug:step>/", wizard.wizard_step, name="wizard_step"),
    path("clusters/<slug:name>/backups/", backup_views.backup_list, name="backup_list"),
    path("clusters/<slug:name>/backups/start/", backup_views.backup_start, name="backup_start"),
    path("clusters/<slug:name>/backups/policy/", backup_views.backup_policy, name="backup_policy"),
    path("clusters/<slug:name>/backups/<slug:backup_id>/restore/", backup_views.backup_restore, name="backup_restore"),
    path("clusters/<slug:name>/drift/check/", backup_views.drift_check, name="drift_check"),
    path("clusters/<slug:name>/drift/repair/", backup_views.drift_repair, name="drift_repair"),
    path("profile/api-tokens/", token_views.token_list, name="api_tokens"),
    path("profile/api-tokens/<slug:key_id>/revoke/", token_views.token_revoke, name="api_token_revoke"),
]
