"""The cluster page's panel of what Joget itself records: the shared servers.json with its stale entries (and
Remove), the nodes wf_setup records as licensed beside the console's licenses, and each app server's build.

The panel is loaded after the page (htmx) and shows the last reading; a worker reads the nodes
(deployments.joget_state), and the panel polls until it is done. No request opens SSH."""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from joget_cluster.access import operator_required, viewer_required
from nodes import audit
from nodes.shortcuts import get_cluster_or_404

from . import joget_state

ANCHOR = "#joget-records"


@require_GET
@viewer_required
def records(request, name):
    """The panel (a fragment); reads again when the last reading is older than a minute."""
    cluster = get_cluster_or_404(name)
    with transaction.atomic():
        joget_state.request_read(cluster)
    ctx = {"cluster": cluster, **joget_state.panel(cluster)}
    response = render(request, "deployments/_joget_records.html", ctx)
    if not ctx["busy"]:
        response.status_code = HttpResponseStopPolling.status_code
    return response


@require_POST
@operator_required
def records_read(request, name):
    cluster = get_cluster_or_404(name)
    with transaction.atomic():
        queued = joget_state.request_read(cluster, force=True)
    if not queued:
        messages.error(request, "A reading or a removal is already under way: the panel shows it when it is done.")
    return redirect(cluster.get_absolute_url() + ANCHOR)


@require_POST
@operator_required
def records_remove(request, name):
    """Remove one stale entry from servers.json (a worker does it on the node, as the wflow home's owner)."""
    cluster = get_cluster_or_404(name)
    entry = request.POST.get("entry")
    if entry is None or len(entry) > 200 or any(ord(c) < 32 for c in entry):
        messages.error(request, "Name the servers.json entry to remove (at most 200 printable characters).")
        return redirect(cluster.get_absolute_url() + ANCHOR)
    if entry in joget_state.known_names(cluster):
        messages.error(request, f"{entry!r} is a node of this cluster: its entry is Joget's own and stays.")
        return redirect(cluster.get_absolute_url() + ANCHOR)
    with transaction.atomic():
        queued = joget_state.request_remove(cluster, entry, request.user.get_username())
        if queued:
            audit.record(request, audit.Action.CLUSTER_CHANGED, target=cluster,
                         details=f"servers.json: removal of the stale entry {entry!r} requested")
    if queued:
        messages.info(request, f"Removing {entry!r} from servers.json on the node; the panel shows the result.")
    else:
        messages.error(request, "A reading or a removal is already under way: try again when it is done.")
    return redirect(cluster.get_absolute_url() + ANCHOR)
