"""Role checks for the API: the console's own (joget_cluster.access), declared per view and method."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from joget_cluster.access import Role, require_role


def required_role(view, method: str) -> Role:
    """What a view asks of a method: `view.roles` (e.g. {"POST": Role.ADMIN}), else viewer to read and
    operator to act, as on the pages (viewer reads, operator runs checks and deployments)."""
    roles = getattr(view, "roles", None) or {}
    if method in roles:
        return roles[method]
    return Role.VIEWER if method in SAFE_METHODS else Role.OPERATOR


class RolePermission(BasePermission):
    """Anonymous: False, so DRF answers 401 with `WWW-Authenticate: Bearer`. Signed in: the pages' own check,
    whose PermissionDenied becomes 403 with the same message."""

    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        require_role(request, required_role(view, request.method))
        return True
