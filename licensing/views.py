from django.contrib import messages
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_GET, require_POST

from joget_cluster.access import operator_required, viewer_required
from joget_cluster.pages import page_or_partial
from nodes import audit
from nodes.models import Cluster, Node
from nodes.shortcuts import get_cluster_or_404

from . import services
from .forms import ActivateForm
from .models import License


def _app_server(cluster: Cluster, node_name: str) -> Node:
    return get_object_or_404(Node, cluster=cluster, name=node_name, is_app_server=True)


def _status_context(cluster: Cluster) -> dict:
    licenses = services.licenses_for(cluster)
    for lic in licenses:
        lic.is_busy = services.is_busy(lic)
    return {
        "cluster": cluster,
        "licenses": licenses,
        "busy": any(lic.is_busy for lic in licenses),
        "void": [lic.node.name for lic in licenses if lic.state == License.State.KEY_CHANGED],
        "profile_warning": services.profile_change_warning(cluster),
        "all_keys": "\n".join(f"{lic.node.name}\t{lic.node.address}:{lic.node.http_port}\t{lic.system_key}"
                              for lic in licenses if lic.system_key),
    }


@require_GET
@viewer_required
def cluster_licenses(request, name):
    """The licensing page; with htmx, only the status part (polled while a read or activation runs)."""
    cluster = get_cluster_or_404(name)
    ctx = _status_context(cluster)
    return page_or_partial(request, "licensing/cluster_licenses.html", "licensing/_status.html", ctx,
                           stop_polling=not ctx["busy"])


@require_POST
@operator_required
def read_keys(request, name):
    cluster = get_cluster_or_404(name)
    nodes = [_app_server(cluster, request.POST["node"])] if request.POST.get("node") else None
    with transaction.atomic():
        queued = services.request_reads(cluster, nodes)
    if queued:
        messages.info(request, f"Reading the system key of {', '.join(queued)} from each node directly.")
    else:
        messages.error(request, "Nothing queued: each node is already being read or activated.")
    return redirect("licensing:cluster_licenses", name)


@require_POST
@operator_required
def activate(request, name, node):
    cluster = get_cluster_or_404(name)
    lic = get_object_or_404(License.objects.select_related("node"), node=_app_server(cluster, node))
    form = ActivateForm(request.POST, prefix=f"n{lic.pk}", has_stored=bool(lic.license_text))
    if not form.is_valid():
        messages.error(request, f"{lic.node.name}: {' '.join(form.errors['license'])}")
        return redirect("licensing:cluster_licenses", name)
    with transaction.atomic():
        if form.cleaned_data["license"]:
            services.save_license(lic, form.cleaned_data["license"])
        queued = services.request_activation(lic)
    pasted = "a newly pasted license" if form.cleaned_data["license"] else "the stored license"
    audit.record(request, audit.Action.LICENSE_ACTIVATED, target=lic.node,
                 details=f"{pasted}; " + ("activation queued" if queued else "node busy, license saved only"))
    if queued:
        messages.info(request, f"Activating the license on {lic.node.name}; the page updates when it is done.")
    else:
        messages.error(request, f"{lic.node.name} is busy with another read or activation: the license is saved, "
                                "activate it again in a moment.")
    return redirect("licensing:cluster_licenses", name)


@require_POST
@operator_required
def mark_requested(request, name):
    cluster = get_cluster_or_404(name)
    done = services.mark_requested(cluster)
    if done:
        messages.success(request, f"Marked as license requested: {', '.join(done)}.")
    else:
        messages.error(request, "No node has a key waiting for a license request.")
    return redirect("licensing:cluster_licenses", name)


@require_GET
@viewer_required
def export_csv(request, name):
    cluster = get_cluster_or_404(name)
    response = HttpResponse(services.export_csv(cluster), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="system-keys-{cluster.name}.csv"'
    return response


@require_GET
@viewer_required
def export_request(request, name):
    cluster = get_cluster_or_404(name)
    response = HttpResponse(services.request_text(cluster), content_type="text/plain; charset=utf-8")
    if request.GET.get("download"):
        response["Content-Disposition"] = f'attachment; filename="license-request-{cluster.name}.txt"'
    return response
