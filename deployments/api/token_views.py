"""The API tokens page: each user sees and revokes their own tokens; an admin sees and revokes anyone's."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from joget_cluster.access import Role, role_of, viewer_required

from ..models import ApiToken
from . import tokens


def _visible(request):
    qs = ApiToken.objects.select_related("user").filter(revoked__isnull=True)
    return qs if role_of(request.user) == Role.ADMIN else qs.filter(user=request.user)


@require_GET
@viewer_required
def token_list(request):
    return render(request, "deployments/api_tokens.html", {
        "tokens": _visible(request).order_by("user__username", "-created"),
        "all_users": role_of(request.user) == Role.ADMIN,
    })


@require_POST
@viewer_required
def token_revoke(request, key_id):
    # Another user's token is "not found" to a non-admin: its existence is not theirs to learn.
    token = get_object_or_404(_visible(request), key_id=key_id)
    tokens.revoke(request, token)
    messages.success(request, f"API token {token.name!r} revoked: requests with it are refused from now on.")
    return redirect("deployments:api_tokens")
