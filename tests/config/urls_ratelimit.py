"""The real URLs plus two small views behind the rate limits, to test the limits themselves."""

from django.http import HttpResponse
from django.urls import path

from config.ratelimit import rate_limited
from config.urls import urlpatterns as real_urlpatterns


@rate_limited("claim")
def claim(request):
    return HttpResponse("claimed")


@rate_limited("signed_link", limit_get=True)
def signed_link(request):
    return HttpResponse("link")


urlpatterns = [path("limited/claim/", claim), path("limited/link/", signed_link), *real_urlpatterns]
