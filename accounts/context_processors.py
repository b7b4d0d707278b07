from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from accounts.roles import EXECUTIVE, MARKETER, has_role


def navigation(request):
    """The links each role sees in the top bar; built from roles, never from guessing URLs."""
    user = getattr(request, "user", None)
    links = [(_("Offers"), reverse("home"))]
    if user is not None and user.is_authenticated:
        links.append((_("My trials"), reverse("me")))
        if has_role(user, MARKETER, EXECUTIVE):
            links.append((_("Console"), reverse("console:home")))
        if has_role(user, EXECUTIVE, MARKETER):
            links.append((_("Dashboard"), reverse("dashboard:home")))
        if user.is_staff:
            links.append((_("Admin"), reverse("admin:index")))
    # Marketers and staff change offers and import history; executives only read.
    return {"nav_links": links, "can_manage_offers": user is not None and has_role(user, MARKETER)}
