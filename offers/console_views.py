"""The marketer console at /console/."""

from django.shortcuts import render

from accounts.roles import EXECUTIVE, MARKETER, role_required


@role_required(MARKETER, EXECUTIVE)
def home(request):
    return render(request, "console/home.html", {"offers": []})
