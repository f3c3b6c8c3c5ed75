"""The deploy wizard: one path through the console for an admin who has not read the guide.

Each page is a thin view over what the console already does (inventory forms,
checklist, dry run, deployment, licenses); the wizard only remembers where the
admin is and shows the way forward.
"""

from functools import partial

from django import forms
from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from joget_cluster import uploads
from joget_cluster.access import Role, admin_required, operator_required, require_role, viewer_required
from licensing.services import is_busy, licenses_for
from nodes import audit
from nodes.forms import ClusterForm, InventoryUploadForm
from nodes.inventory import InventoryError, import_inventory, load_inventory
from nodes.models import Artifact, Cluster
from nodes.services import enqueue_fetch_host_key, history_of, replaced_details
from nodes.shortcuts import get_cluster_or_404

from . import checklist, services
from .models import Deployment, WizardState
from .pages import checklist_context, run_groups

STEP_KEYS = [key for key, _ in WizardState.STEPS]


class ArtifactUploadForm(forms.Form):
    kind = forms.ChoiceField(choices=Artifact.Kind.choices)
    file = forms.FileField()


def _state(cluster: Cluster, step: str | None = None) -> WizardState:
    state, _ = WizardState.objects.get_or_create(cluster=cluster)
    if step and state.step != step:
        state.step = step
        state.save(update_fields=["step", "updated"])
    return state


def _page(request, cluster, step, template, **ctx):
    _state(cluster, step)
    index = STEP_KEYS.index(step)
    steps = [{"key": k, "title": t, "n": i + 1, "done": i < index, "current": k == step,
              "url": reverse("deployments:wizard_step", args=[cluster.name, k])}
             for i, (k, t) in enumerate(WizardState.STEPS)]
    # The checklist's tick says how it went, not only that the admin walked past it.
    check = checklist.summary(cluster.check_runs.first())
    for s in steps:
        if s["key"] == "checklist" and not s["current"]:
            s["state"] = {"failed": "failed", "stale": "stale", "running": "", "none": ""}.get(check["state"], "")
            s["done"] = s["done"] and not s["state"] and check["state"] == "passed"
            s["note"] = check["label"]
    nxt = STEP_KEYS[index + 1] if index + 1 < len(STEP_KEYS) else None
    prev = STEP_KEYS[index - 1] if index else None
    ctx.update(cluster=cluster, steps=steps, step=step, step_title=dict(WizardState.STEPS)[step],
               next_url=reverse("deployments:wizard_step", args=[cluster.name, nxt]) if nxt else None,
               prev_url=reverse("deployments:wizard_step", args=[cluster.name, prev]) if prev else None)
    return render(request, template, ctx)


@require_http_methods(["GET", "POST"])
@viewer_required
def wizard_start(request):
    """Page 1 for a new cluster: describe it, import an inventory file, or load a running testbed."""
    if request.method == "POST":  # reading the page is for everyone; creating or replacing a cluster is not
        require_role(request, Role.ADMIN)
    action = request.POST.get("action") if request.method == "POST" else None
    form = ClusterForm(request.POST if action == "create" else None, prefix="c")
    upload = InventoryUploadForm(request.POST if action == "import" else None,
                                 request.FILES if action == "import" else None)
    if action == "create" and form.is_valid():
        cluster = form.save()
        audit.record(request, audit.Action.CLUSTER_CREATED, target=cluster, details="in the deploy wizard")
        return redirect("deployments:wizard_step", cluster.name, "nodes")
    if action == "import" and uploads.is_valid(request, upload):
        try:
            cluster, replaced = import_inventory(upload.cleaned_data["file"], replace=upload.cleaned_data["replace"],
                                                 identity=upload.cleaned_data["identity"])
        except InventoryError as exc:
            upload.add_error("file", " ".join(exc.messages))
        else:
            audit.record(request, audit.Action.INVENTORY_IMPORTED, target=cluster,
                         details=f"{cluster.nodes.count()} nodes, in the deploy wizard{replaced}")
            return redirect("deployments:wizard_step", cluster.name, "nodes")
    clusters = Cluster.objects.select_related("wizard").order_by("name")
    testbeds = _running_testbeds()
    for testbed in testbeds:  # a loaded one is replaced only after a confirmation
        testbed["loaded"] = any(c.name == testbed["cluster"] for c in clusters)
    ctx = {"form": form, "upload": upload, "testbeds": testbeds, "clusters": clusters}
    return render(request, "deployments/wizard/start.html", ctx)


def _running_testbeds() -> list[dict]:
    if settings.HTTPS:
        return []  # a production console never takes in a testbed: its hosts run as root on this machine
    try:
        from nodes.testbed import Testbed, known_prefixes
    except ImportError:
        return []
    found = []
    for prefix in known_prefixes():
        try:
            tb = Testbed(prefix)
            if tb.read_state():
                inv = tb.inventory()
                found.append({"prefix": prefix, "cluster": inv["cluster"], "nodes": len(inv["nodes"])})
        except Exception:  # noqa: BLE001,S112 - a half-made testbed is simply not offered
            continue
    return found


def _testbed_inventory(prefix: str) -> dict:
    from nodes.testbed import Testbed

    return Testbed(prefix).inventory()


def _testbed_state_dir(prefix: str):
    from nodes.testbed import Testbed

    return Testbed(prefix).state_dir


@require_POST
@admin_required
def wizard_import_testbed(request):
    """Load a running testbed as a cluster; when one of that name exists, ask first and say what is lost."""
    prefix = request.POST.get("prefix", "")
    if not any(t["prefix"] == prefix for t in _running_testbeds()):
        messages.error(request, f"No running testbed with prefix {prefix!r}.")
        return redirect("deployments:wizard_start")
    inventory = _testbed_inventory(prefix)
    existing = Cluster.objects.filter(name=inventory.get("cluster")).first()
    lost = history_of(existing) if existing else []
    if existing and not request.POST.get("confirm"):
        return render(request, "deployments/wizard/replace_confirm.html",
                      {"cluster": existing, "prefix": prefix, "lost": lost})
    try:
        # The testbed's key and stand-in artifacts are read from its own state directory and nowhere else:
        # the document comes from the state file the `testbed` command wrote, the prefix from a list of those.
        cluster = load_inventory(inventory, replace=True, local_root=_testbed_state_dir(prefix))
    except InventoryError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("deployments:wizard_start")
    replaced = f"; {replaced_details(lost)}" if existing else ""
    audit.record(request, audit.Action.INVENTORY_IMPORTED, target=cluster,
                 details=f"{cluster.nodes.count()} nodes, from testbed {prefix}{replaced}")
    messages.success(request, f"Testbed {prefix} {'replaced' if existing else 'imported as'} cluster {cluster.name}.")
    return redirect("deployments:wizard_step", cluster.name, "nodes")


@require_GET
@viewer_required
def wizard_resume(request, name):
    cluster = get_cluster_or_404(name)
    return redirect("deployments:wizard_step", name, _state(cluster).step)


@require_POST
@operator_required
def wizard_connect_all(request, name):
    cluster = get_cluster_or_404(name)
    with transaction.atomic():
        for node in cluster.nodes.filter(host_key=""):
            enqueue_fetch_host_key(node)
    messages.info(request, "Fetching host keys: compare each fingerprint with the server's, then confirm it.")
    return redirect(reverse("deployments:wizard_step", args=[name, "nodes"]) + "?fetching=1")


@require_POST
@admin_required
def wizard_upload(request, name):
    cluster = get_cluster_or_404(name)
    form = ArtifactUploadForm(request.POST, request.FILES)
    if not uploads.is_valid(request, form):
        for errors in form.errors.values():
            messages.error(request, " ".join(errors))
        return redirect("deployments:wizard_step", name, "artifacts")
    art = services.store_artifact(request, cluster, form.cleaned_data["kind"], form.cleaned_data["file"])
    messages.success(request, f"{art.get_kind_display()} stored: {art.size} bytes, sha256 {art.sha256[:16]}…")
    return redirect("deployments:wizard_step", name, "artifacts")


# What each wizard page shows besides the step bar: one builder per step, each given the request and cluster.

def _nodes_step(request, cluster: Cluster) -> dict:
    nodes = list(cluster.nodes.order_by("name"))
    # Right after "Fetch all missing host keys" (?fetching): the nodes whose key has not come back yet.
    fetching = {n.pk for n in nodes if "fetching" in request.GET and not n.host_key
                and not n.offered_host_key and not n.offered_host_key_error}
    return {"nodes": nodes, "fetching": fetching}


def _layers_step(request, cluster: Cluster) -> dict:
    return {**{kind: cluster.layer(kind) for kind in Cluster.LAYERS}, "app_servers": cluster.app_servers()}


def _artifacts_step(request, cluster: Cluster) -> dict:
    return {"artifacts": cluster.artifacts.all(), "form": ArtifactUploadForm()}


def _checklist_step(request, cluster: Cluster) -> dict:
    ctx = checklist_context(cluster, cluster.check_runs.first())
    ctx.pop("cluster")
    return ctx


def _deployment_step(request, cluster: Cluster, *, dry_run: bool, only: str | None = None) -> dict:
    """Review (the last dry run), Run (the last deployment), Test (its post_test group only)."""
    dep = cluster.deployments.filter(dry_run=dry_run).first()
    ctx = {"deployment": dep, "running": cluster.deployments.filter(status=Deployment.Status.RUNNING).first()}
    if dep:
        groups = [g for g in run_groups(dep) if only is None or g["key"] == only]
        ctx.update(groups=groups, progress=dep.progress(), recap=dep.recap(), back_url=request.path)
    return ctx


def _licenses_step(request, cluster: Cluster) -> dict:
    licenses = licenses_for(cluster)
    for lic in licenses:
        lic.reading = is_busy(lic) and lic.busy == lic.Busy.READING
    return {
        "licenses": licenses,
        "reading": any(lic.reading for lic in licenses),
        "activated": sum(1 for lic in licenses if lic.state == "activated"),
        "licenses_url": reverse("licensing:cluster_licenses", args=[cluster.name]),
        "deployed": cluster.deployments.filter(dry_run=False, status=Deployment.Status.SUCCEEDED).exists(),
    }


STEP_BUILDERS = {
    "nodes": _nodes_step,
    "layers": _layers_step,
    "artifacts": _artifacts_step,
    "checklist": _checklist_step,
    "review": partial(_deployment_step, dry_run=True),
    "run": partial(_deployment_step, dry_run=False),
    "licenses": _licenses_step,
    "test": partial(_deployment_step, dry_run=False, only="post_test"),
}


@require_GET
@viewer_required
def wizard_step(request, name, step):
    cluster = get_cluster_or_404(name)
    if step not in STEP_BUILDERS:
        raise Http404("no such wizard step")
    return _page(request, cluster, step, f"deployments/wizard/{step}.html", **STEP_BUILDERS[step](request, cluster))
