"""Roles: viewer (reads), operator (runs checks and deployments), admin
(inventory, credentials, users). One place decides; views only declare.

A user's role is the highest of their groups named "viewer", "operator" and
"admin"; a superuser is an admin. A user in none of them sees nothing but a
page saying so.
"""

from enum import IntEnum
from functools import wraps

from django.core.exceptions import PermissionDenied


class Role(IntEnum):
    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3


ROLE_NAMES = {r: r.name.lower() for r in Role}


def role_of(user) -> Role | None:
    if not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    cached = getattr(user, "_jcc_role", False)
    if cached is not False:
        return cached
    names = set(user.groups.values_list("name", flat=True))
    roles = [r for r, name in ROLE_NAMES.items() if name in names]
    user._jcc_role = max(roles) if roles else None
    return user._jcc_role


def require_role(request, role: Role) -> None:
    current = role_of(request.user)
    if current is None or current < role:
        raise PermissionDenied(f"This needs the {ROLE_NAMES[role]} role.")


def role_required(role: Role):
    """Decorator for function views; stack it under the method decorators."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            require_role(request, role)
            return view(request, *args, **kwargs)

        wrapped.required_role = role
        return wrapped

    return decorator


viewer_required = role_required(Role.VIEWER)
operator_required = role_required(Role.OPERATOR)
admin_required = role_required(Role.ADMIN)


def context(request):
    """Template context: `role` and the can_operate / can_admin flags, to hide what a role cannot use."""
    role = role_of(request.user) if hasattr(request, "user") else None
    return {"role": ROLE_NAMES.get(role, ""), "can_operate": bool(role and role >= Role.OPERATOR),
            "can_admin": role == Role.ADMIN}
