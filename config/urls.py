from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularJSONAPIView
from rest_framework.permissions import AllowAny

from billing.webhooks import stripe_webhook
from config.api import api_not_found
from config.health import healthz

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
    path("stripe/webhook/", stripe_webhook, name="stripe_webhook"),
]

if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)

admin.site.site_header = "Foretaste operations"
admin.site.site_title = "Foretaste admin"
