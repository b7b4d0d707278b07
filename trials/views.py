from django.contrib.auth.decorators import login_required
from django.shortcuts import render


@login_required
def me(request):
    """The customer's own page: trials, purchases, and a one-click cancel."""
    return render(request, "trials/me.html", {"trials": []})
