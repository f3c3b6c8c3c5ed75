"""The cluster overview page. It shows every floor (licensing's banner, this app's deployment, checklist and
artifacts, the inventory's layers and nodes), so its view lives here on the top floor; the project's urls keep
it at nodes:cluster_detail, the address Cluster.get_absolute_url and every link already use."""

from django.views.decorators.http import require_GET

from joget_cluster.access import viewer_required
from joget_cluster.pages import page_or_partial
from nodes import overview as inventory
from nodes.models import Cluster
from nodes.shortcuts import get_cluster_or_404

from . import backup_views, checklist
from .models import Deployment


def deployment_summary(cluster: Cluster) -> dict | None:
    """The running deployment, or else the latest one: the deployment, whether it runs, its progress, recap."""
    deployments = cluster.deployments.select_related("started_by")
    dep = deployments.filter(status=Deployment.Status.RUNNING).first() or deployments.first()
    if dep is None:
        return None
    return {"deployment": dep, "current": dep.is_active, **dep.progress(), "recap": dep.recap()}


@require_GET
@viewer_required
def cluster_detail(request, name):
    """The cluster overview; with htmx, only the deployment card (polled while a deployment runs)."""
    cluster = get_cluster_or_404(name)
    latest = deployment_summary(cluster)
    ctx = {"cluster": cluster, "latest": latest}
    if not request.htmx:  # the poll redraws the card alone: the rest is read for the page only
        check_run = cluster.check_runs.select_related("started_by").first()
        ctx.update(inventory.context(cluster), check_run=check_run, checklist=checklist.summary(check_run),
                   artifacts=cluster.artifacts.all())
        ctx.update(backup_views.cluster_context(cluster))  # the drift badge and the last backups
    return page_or_partial(request, "deployments/cluster_detail.html", "deployments/_cluster_deployment.html", ctx,
                           stop_polling=not (latest and latest["current"]))
