"""The product's URLs plus a bare view that returns "hello": the yardstick of bench_landing.py,
behind the same middleware and the same gunicorn. Not part of the product."""

from django.http import HttpResponse
from django.urls import path

from config.urls import urlpatterns as product_urlpatterns


def hello(request):
    return HttpResponse("hello", content_type="text/plain")


urlpatterns = [path("bench/hello/", hello), *product_urlpatterns]
