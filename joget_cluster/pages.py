"""What every app's views share: one view answers a page or, with htmx, its fragment; a safe `next`.

Generic on purpose: this floor knows no app's models (nodes.shortcuts finds a cluster or a node)."""

from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HttpResponseStopPolling


def page_or_partial(request, full_template: str, partial_template: str, ctx: dict, *, stop_polling: bool = False):
    """The whole page, or with htmx only the fragment it polls; `stop_polling` (what it shows is finished)
    answers the fragment with status 286, which ends htmx's `every Ns` poll."""
    if not request.htmx:
        return render(request, full_template, ctx)
    response = render(request, partial_template, ctx)
    if stop_polling:
        response.status_code = HttpResponseStopPolling.status_code
    return response


def safe_next(request) -> str | None:
    """The page a form or lever was opened from (`next`, posted or in the query), if it is on this site."""
    url = request.POST.get("next") or request.GET.get("next", "")
    return url if url and url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()}) else None
