"""Roles are groups. One helper guards a view by role; staff may enter everywhere."""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied

MARKETER = "Marketer"
EXECUTIVE = "Executive"
ROLES = (MARKETER, EXECUTIVE)


def user_roles(user) -> frozenset[str]:
    """The roles of a user, read once per request and cached on the user object."""
    if not user.is_authenticated:
        return frozenset()
    cached = getattr(user, "_foretaste_roles", None)
    if cached is None:
        cached = frozenset(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        user._foretaste_roles = cached
    return cached


def has_role(user, *roles: str) -> bool:
    if not user.is_authenticated:
        return False
    return user.is_staff or bool(user_roles(user) & set(roles))


def role_required(*roles: str):
    """Let staff and users with one of ``roles`` in; send anonymous visitors to log in and
    refuse everybody else with 403."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not has_role(request.user, *roles):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
