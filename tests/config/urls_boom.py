"""The real URLs plus one view that fails, to see the 500 page."""

from django.urls import path

from config.urls import urlpatterns as real_urlpatterns


def boom(request):
    raise RuntimeError("an unexpected failure")


urlpatterns = [path("boom/", boom), *real_urlpatterns]
