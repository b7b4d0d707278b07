from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve
from drf_spectacular.views import SpectacularJSONAPIView
from rest_framework.permissions import AllowAny

from billing.webhooks import stripe_webhook
from config.api import api_not_found
from config.health import healthz, healthz_ready

urlpatterns = [
    path("", include("offers.urls")),
    path("me/", include("trials.urls")),
    path("console/", include("offers.console_urls", namespace="console")),
    path("dashboard/", include("analytics.urls", namespace="dashboard")),
    path(
        "api/v1/openapi.json",
        SpectacularJSONAPIView.as_view(permission_classes=[AllowAny], authentication_classes=[]),
        name="openapi",
    ),
    path("api/v1/", include("config.api_urls")),
    # Anything else under the API answers the API's JSON 404, not the site's HTML page.
    re_path(r"^api/v1(?:/|$)", api_not_found),
    path("accounts/", include("allauth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("healthz/ready", healthz_ready, name="healthz_ready"),
    path("stripe/webhook/", stripe_webhook, name="stripe_webhook"),
]

if not settings.PRODUCTION:
    # Uploaded product images for `make run`, whose DEBUG is off by default (Django's static()
    # helper serves nothing then). In production the web server in front serves MEDIA_ROOT.
    urlpatterns += [
        re_path(r"^media/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT}),
    ]

admin.site.site_header = "Foretaste operations"
admin.site.site_title = "Foretaste admin"
