import json

from django.contrib import messages
from django.db import transaction
from django.db.models import ProtectedError, RestrictedError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from joget_cluster.access import admin_required, operator_required, viewer_required

from . import services
from .forms import (
    ClusterForm,
    CredentialForm,
    GenerateKeyForm,
    InventoryUploadForm,
    LoadBalancerForm,
    NodeForm,
    SharedDatabaseForm,
    SharedDirectoryForm,
)
from .inventory import InventoryError, load_inventory
from .models import Cluster, Credential, LoadBalancer, Node, SharedDatabase, SharedDirectory

LAYERS = {
    "shared-directory": (SharedDirectory, SharedDirectoryForm, "Shared directory"),
    "shared-database": (SharedDatabase, SharedDatabaseForm, "Shared database"),
    "load-balancer": (LoadBalancer, LoadBalancerForm, "Load balancer"),
}


def _cluster(name: str) -> Cluster:
    return get_object_or_404(Cluster, name=name)


def _node(cluster_name: str, node_name: str) -> Node:
    return get_object_or_404(Node.objects.select_related("cluster"), cluster__name=cluster_name, name=node_name)


def _form_page(request, form, *, title, cluster=None, success_url=None, template="nodes/form.html"):
    """GET shows the form; POST saves it, or with ?validate=1 only re-renders it
    with errors (HTMX inline validation); an invalid POST saves nothing."""
    if request.method == "POST" and form.is_valid() and not request.GET.get("validate"):
        obj = form.save()
        messages.success(request, f"{title}: saved.")
        url = success_url or obj.get_absolute_url()
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    ctx = {"form": form, "title": title, "cluster": cluster}
    if request.htmx:
        return render(request, "nodes/_form.html", ctx)
    return render(request, template, ctx)


@require_GET
@viewer_required
def cluster_list(request):
    clusters = Cluster.objects.order_by("name").prefetch_related("nodes")
    return render(request, "nodes/cluster_list.html", {"clusters": clusters})


@require_http_methods(["GET", "POST"])
@admin_required
def cluster_create(request):
    form = ClusterForm(request.POST or None)
    return _form_page(request, form, title="New cluster")


@require_http_methods(["GET", "POST"])
@admin_required
def cluster_edit(request, name):
    cluster = _cluster(name)
    form = ClusterForm(request.POST or None, instance=cluster)
    return _form_page(request, form, title=f"Cluster {cluster.name}", cluster=cluster)


@require_GET
@viewer_required
def cluster_detail(request, name):
    cluster = _cluster(name)
    ctx = {
        "cluster": cluster,
        "nodes": cluster.nodes.order_by("name"),
        "shared_directory": SharedDirectory.objects.filter(cluster=cluster).select_related("node").first(),
        "shared_database": SharedDatabase.objects.filter(cluster=cluster).select_related("node").first(),
        "load_balancer": LoadBalancer.objects.filter(cluster=cluster).select_related("node").first(),
        "artifacts": cluster.artifacts.all(),
    }
    return render(request, "nodes/cluster_detail.html", ctx)


@require_POST
@admin_required
def cluster_delete(request, name):
    cluster = _cluster(name)
    cluster.delete()
    messages.success(request, f"Cluster {name} removed from the console (nothing was changed on its servers).")
    return redirect("nodes:cluster_list")


@require_http_methods(["GET", "POST"])
@admin_required
def cluster_import(request):
    form = InventoryUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            data = json.load(form.cleaned_data["file"])
            cluster = load_inventory(data, replace=form.cleaned_data["replace"])
        except (ValueError, UnicodeDecodeError) as exc:
            form.add_error("file", f"Not a JSON document: {exc}")
        except InventoryError as exc:
            form.add_error("file", " ".join(exc.messages))
        else:
            messages.success(request, f"Cluster {cluster.name} imported with {cluster.nodes.count()} nodes.")
            return redirect(cluster)
    return render(request, "nodes/cluster_import.html", {"form": form})


@require_http_methods(["GET", "POST"])
@admin_required
def node_create(request, name):
    cluster = _cluster(name)
    form = NodeForm(request.POST or None, cluster=cluster)
    return _form_page(request, form, title=f"New node in {cluster.name}", cluster=cluster)


@require_http_methods(["GET", "POST"])
@admin_required
def node_edit(request, name, node):
    obj = _node(name, node)
    form = NodeForm(request.POST or None, instance=obj, cluster=obj.cluster)
    return _form_page(request, form, title=f"Node {obj.name}", cluster=obj.cluster)


@require_GET
@viewer_required
def node_detail(request, name, node):
    obj = _node(name, node)
    return render(request, "nodes/node_detail.html", {"node": obj, "cluster": obj.cluster})


@require_POST
@admin_required
def node_delete(request, name, node):
    obj = _node(name, node)
    try:
        obj.delete()
    except (ProtectedError, RestrictedError):
        messages.error(request, f"{obj.name} holds a shared resource: reassign that first.")
        return redirect(obj)
    messages.success(request, f"Node {node} removed from the inventory.")
    return redirect("nodes:cluster_detail", name)


@require_POST
@operator_required
def node_connect(request, name, node):
    obj = _node(name, node)
    with transaction.atomic():
        services.enqueue_fetch_host_key(obj)
    obj.refresh_from_db()
    return render(request, "nodes/_host_key.html", {"node": obj, "fetching": True})


@require_GET
@viewer_required
def node_host_key(request, name, node):
    obj = _node(name, node)
    fetching = obj.offered_host_key_at is None
    response = render(request, "nodes/_host_key.html", {"node": obj, "fetching": fetching})
    if request.htmx and not fetching:
        response.status_code = HttpResponseStopPolling.status_code
    return response


@require_POST
@admin_required
def node_confirm_host_key(request, name, node):
    obj = _node(name, node)
    if services.confirm_host_key(obj, request.POST.get("fingerprint", "")):
        messages.success(request, f"Host key of {obj.name} pinned.")
    else:
        messages.error(request, "The offered key changed since it was shown: fetch it again and compare.")
    return HttpResponseClientRedirect(obj.get_absolute_url()) if request.htmx else redirect(obj)


@require_POST
@operator_required
def node_probe(request, name, node):
    obj = _node(name, node)
    with transaction.atomic():
        services.enqueue_probe(obj)
    obj.refresh_from_db()
    return render(request, "nodes/_facts.html", {"node": obj})


@require_GET
@viewer_required
def node_facts(request, name, node):
    obj = _node(name, node)
    response = render(request, "nodes/_facts.html", {"node": obj})
    done = not obj.probe_requested_at or (obj.facts_at and obj.facts_at >= obj.probe_requested_at)
    if request.htmx and done:
        response.status_code = HttpResponseStopPolling.status_code
    return response


@require_http_methods(["GET", "POST"])
@admin_required
def layer_edit(request, name, layer):
    cluster = _cluster(name)
    if layer not in LAYERS:
        return HttpResponse(status=404)
    model, form_class, title = LAYERS[layer]
    instance = model.objects.filter(cluster=cluster).first()
    form = form_class(request.POST or None, instance=instance, cluster=cluster)
    return _form_page(request, form, title=f"{title} of {cluster.name}", cluster=cluster,
                      success_url=cluster.get_absolute_url())


@require_GET
@admin_required
def credential_list(request):
    return render(request, "nodes/credential_list.html", {"credentials": Credential.objects.all(),
                                                           "generate_form": GenerateKeyForm()})


@require_http_methods(["GET", "POST"])
@admin_required
def credential_create(request):
    form = CredentialForm(request.POST or None)
    return _form_page(request, form, title="New credential", success_url="/credentials/")


@require_POST
@admin_required
def credential_generate(request):
    form = GenerateKeyForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors["name"]))
        return redirect("nodes:credential_list")
    cred = services.generate_key_pair(form.cleaned_data["name"])
    messages.success(request, f"Key pair {cred.name} generated: add its public key to authorized_keys.")
    return redirect("nodes:credential_list")
