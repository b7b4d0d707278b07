"""Who may use the JSON API: a key acts with its user's role."""

from rest_framework.permissions import SAFE_METHODS, BasePermission

from accounts.roles import EXECUTIVE, MARKETER, has_role


class RolePermission(BasePermission):
    """Marketers and staff read and write; executives only read; customers are refused (403).

    A request without a valid key never gets here as a user, and DRF answers it with 401.
    """

    read_roles = (MARKETER, EXECUTIVE)
    write_roles = (MARKETER,)
    message = "Your role may not do this through the API."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if user is None or not user.is_authenticated:
            return False
        if request.method in SAFE_METHODS:
            self.message = "Reading through the API needs the Marketer or Executive role."
            return has_role(user, *self.read_roles)
        self.message = "Changing things through the API needs the Marketer role."
        return has_role(user, *self.write_roles)
