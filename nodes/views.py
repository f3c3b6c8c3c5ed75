
from django.contrib import messages
from django.db import transaction
from django.db.models import ProtectedError, RestrictedError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, reswap

from joget_cluster import uploads
from joget_cluster.access import admin_required, operator_required, viewer_required
from joget_cluster.pages import page_or_partial, safe_next

from . import audit, services, ssh
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
from .inventory import InventoryError, import_inventory
from .models import BalancerState, Cluster, Credential
from .shortcuts import get_cluster_or_404, get_node_or_404

CLUSTER_AUDIT = (audit.Action.CLUSTER_CREATED, audit.Action.CLUSTER_CHANGED)
NODE_AUDIT = (audit.Action.NODE_CREATED, audit.Action.NODE_CHANGED)
LAYER_AUDIT = (audit.Action.LAYER_CREATED, audit.Action.LAYER_CHANGED)

LAYERS = {
    "shared-directory": ("shared_directory", SharedDirectoryForm, "Shared directory"),
    "shared-database": ("shared_database", SharedDatabaseForm, "Shared database"),
    "load-balancer": ("load_balancer", LoadBalancerForm, "Load balancer"),
}


def _form_page(request, form, *, title, cluster=None, success_url=None, template="nodes/form.html", audited=None):
    """GET shows the form; POST saves it. With htmx, ?validate=1 (inline validation) and a POST that does not
    validate answer only the error slots, so inputs keep what was typed; an invalid POST saves nothing.
    `audited`: the (created, changed) audit actions of a save. A safe `next` (the page the form was opened
    from) is where Save and Cancel go back to."""
    next_url = safe_next(request)
    if request.method == "POST" and form.is_valid() and not request.GET.get("validate"):
        creating = form.instance._state.adding
        obj = form.save()
        if audited:
            audit.record(request, audited[0] if creating else audited[1], target=obj,
                         details="" if creating else audit.changed_fields(form))
        note = form.saved_note() if hasattr(form, "saved_note") else ""
        messages.success(request, f"{title}: saved." + (f" {note}" if note else ""))
        url = next_url or success_url or obj.get_absolute_url()
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    ctx = {"form": form, "title": title, "cluster": cluster, "next": next_url}
    if request.method == "POST" and request.htmx:
        return reswap(render(request, "nodes/_form_errors.html", ctx), "none")
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
    return _form_page(request, form, title="New cluster", audited=CLUSTER_AUDIT)


@require_http_methods(["GET", "POST"])
@admin_required
def cluster_edit(request, name):
    cluster = get_cluster_or_404(name)
    form = ClusterForm(request.POST or None, instance=cluster)
    return _form_page(request, form, title=f"Cluster {cluster.name}", cluster=cluster, audited=CLUSTER_AUDIT)


@require_POST
@admin_required
def cluster_delete(request, name):
    cluster = get_cluster_or_404(name)
    nodes = cluster.nodes.count()
    cluster.delete()
    audit.record(request, audit.Action.CLUSTER_DELETED, target=f"cluster {name}", cluster=name,
                 details=f"with {nodes} nodes")
    messages.success(request, f"Cluster {name} removed from the console (nothing was changed on its servers).")
    return redirect("nodes:cluster_list")


@require_http_methods(["GET", "POST"])
@admin_required
def cluster_import(request):
    form = InventoryUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and uploads.is_valid(request, form):
        try:
            cluster, replaced = import_inventory(form.cleaned_data["file"], replace=form.cleaned_data["replace"],
                                                 identity=form.cleaned_data["identity"])
        except InventoryError as exc:
            form.add_error("file", " ".join(exc.messages))
        else:
            audit.record(request, audit.Action.INVENTORY_IMPORTED, target=cluster,
                         details=f"{cluster.nodes.count()} nodes{replaced}")
            messages.success(request, f"Cluster {cluster.name} imported with {cluster.nodes.count()} nodes.")
            return redirect(cluster)
    return render(request, "nodes/cluster_import.html", {"form": form})


@require_http_methods(["GET", "POST"])
@admin_required
def node_create(request, name):
    cluster = get_cluster_or_404(name)
    form = NodeForm(request.POST or None, cluster=cluster)
    return _form_page(request, form, title=f"New node in {cluster.name}", cluster=cluster, audited=NODE_AUDIT)


@require_http_methods(["GET", "POST"])
@admin_required
def node_edit(request, name, node):
    obj = get_node_or_404(name, node)
    form = NodeForm(request.POST or None, instance=obj, cluster=obj.cluster)
    return _form_page(request, form, title=f"Node {obj.name}", cluster=obj.cluster, audited=NODE_AUDIT)


@require_GET
@viewer_required
def node_detail(request, name, node):
    obj = get_node_or_404(name, node)
    return render(request, "nodes/node_detail.html", {"node": obj, "cluster": obj.cluster,
                                                      "balancer_states": BalancerState.choices})


@require_POST
@admin_required
def node_delete(request, name, node):
    obj = get_node_or_404(name, node)
    try:
        obj.delete()
    except (ProtectedError, RestrictedError) as exc:
        messages.error(request, _why_not_deleted(obj, exc))
        return redirect(obj)
    audit.record(request, audit.Action.NODE_DELETED, target=obj, cluster=name)
    messages.success(request, f"Node {node} removed from the inventory.")
    return redirect("nodes:cluster_detail", name)


def _why_not_deleted(node, exc) -> str:
    blockers = getattr(exc, "restricted_objects", None) or getattr(exc, "protected_objects", ())
    # Compared by label: this floor does not import the deployments app whose rows hold the node.
    if any(o._meta.label == "deployments.StepRun" for o in blockers):
        way = ("Use “Remove an app server” on the cluster page instead: it takes the node out of the balancer "
               "and the member lists first, and keeps its history" if node.is_app_server else
               "Only deleting the whole cluster drops that history")
        return f"{node.name} has a deployment history, which deleting it would lose. {way}."
    return f"{node.name} holds a shared resource: reassign that first."


@require_POST
@operator_required
def node_connect(request, name, node):
    obj = get_node_or_404(name, node)
    with transaction.atomic():
        services.enqueue_fetch_host_key(obj)
    obj.refresh_from_db()
    return render(request, "nodes/_host_key.html", {"node": obj, "fetching": True})


@require_GET
@viewer_required
def node_host_key(request, name, node):
    obj = get_node_or_404(name, node)
    fetching = obj.offered_host_key_at is None
    if not fetching and obj.host_key and obj.offered_host_key:
        offered, pinned = ssh.fingerprint(obj.offered_host_key), ssh.fingerprint(obj.host_key)
        if offered != pinned:
            audit.record_host_key_mismatch(request, obj, offered, pinned)
    return page_or_partial(request, "nodes/_host_key.html", "nodes/_host_key.html",
                           {"node": obj, "fetching": fetching}, stop_polling=not fetching)


@require_POST
@admin_required
def node_confirm_host_key(request, name, node):
    obj = get_node_or_404(name, node)
    previous = ssh.fingerprint(obj.host_key) if obj.host_key else ""
    if services.confirm_host_key(obj, request.POST.get("fingerprint", "")):
        pinned = ssh.fingerprint(obj.host_key)
        replacing = f", replacing {previous}" if previous and previous != pinned else ""
        audit.record(request, audit.Action.HOST_KEY_CONFIRMED, target=obj, details=f"pinned {pinned}{replacing}")
        messages.success(request, f"Host key of {obj.name} pinned.")
    else:
        if obj.offered_host_key:
            audit.record(request, audit.Action.HOST_KEY_MISMATCH, target=obj,
                         details="not pinned: the key offered now is not the one shown for confirmation")
        messages.error(request, "The offered key changed since it was shown: fetch it again and compare.")
    back = safe_next(request) or obj.get_absolute_url()  # the wizard's node list confirms in place
    return HttpResponseClientRedirect(back) if request.htmx else redirect(back)


@require_POST
@operator_required
def node_probe(request, name, node):
    obj = get_node_or_404(name, node)
    with transaction.atomic():
        services.enqueue_probe(obj)
    obj.refresh_from_db()
    return render(request, "nodes/_facts.html", {"node": obj})


@require_GET
@viewer_required
def node_facts(request, name, node):
    obj = get_node_or_404(name, node)
    done = not obj.probe_requested_at or (obj.facts_at and obj.facts_at >= obj.probe_requested_at)
    return page_or_partial(request, "nodes/_facts.html", "nodes/_facts.html", {"node": obj}, stop_polling=bool(done))


@require_http_methods(["GET", "POST"])
@admin_required
def layer_edit(request, name, layer):
    cluster = get_cluster_or_404(name)
    if layer not in LAYERS:
        return HttpResponse(status=404)
    kind, form_class, title = LAYERS[layer]
    form = form_class(request.POST or None, instance=cluster.layer(kind), cluster=cluster)
    return _form_page(request, form, title=f"{title} of {cluster.name}", cluster=cluster,
                      success_url=cluster.get_absolute_url(), audited=LAYER_AUDIT)


@require_GET
@admin_required
def credential_list(request):
    return render(request, "nodes/credential_list.html", {"credentials": Credential.objects.all(),
                                                           "generate_form": GenerateKeyForm()})


@require_http_methods(["GET", "POST"])
@admin_required
def credential_create(request):
    form = CredentialForm(request.POST or None)
    return _form_page(request, form, title="New credential", success_url="/credentials/",
                      audited=(audit.Action.CREDENTIAL_CREATED, audit.Action.CREDENTIAL_CREATED))


@require_POST
@admin_required
def credential_generate(request):
    form = GenerateKeyForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors["name"]))
        return redirect("nodes:credential_list")
    cred = services.generate_key_pair(form.cleaned_data["name"])
    audit.record(request, audit.Action.CREDENTIAL_GENERATED, target=cred, details="Ed25519 key pair")
    messages.success(request, f"Key pair {cred.name} generated: add its public key to authorized_keys.")
    return redirect("nodes:credential_list")
