from django.shortcuts import render

from accounts.roles import EXECUTIVE, MARKETER, role_required


@role_required(EXECUTIVE, MARKETER)
def home(request):
    """The executive overview."""
    return render(request, "analytics/home.html", {})
