from django.shortcuts import render


def home(request):
    """The public list of live offers."""
    return render(request, "offers/home.html", {"offers": []})
