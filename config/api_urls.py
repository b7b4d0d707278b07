"""The JSON API under /api/v1/. Each app adds its own routes here. No trailing slashes: these
paths are a public contract (docs/architecture.md)."""

from django.urls import path

from analytics import api as analytics_api
from billing import api as billing_api
from offers import api_offers, api_products

urlpatterns: list = [
    path("products", api_products.ProductListView.as_view(), name="api_products"),
    path("products/<slug:sku>", api_products.ProductDetailView.as_view(), name="api_product"),
    path("offers", api_offers.OfferListView.as_view(), name="api_offers"),
    path("offers/<slug:slug>", api_offers.OfferDetailView.as_view(), name="api_offer"),
    path("offers/<slug:slug>/launch", api_offers.OfferLaunchView.as_view(), name="api_offer_launch"),
    path("offers/<slug:slug>/metrics", analytics_api.OfferMetricsView.as_view(), name="api_offer_metrics"),
    path("metrics/offers", analytics_api.OffersOverviewView.as_view(), name="api_metrics_offers"),
    path("customers", billing_api.CustomerImportView.as_view(), name="api_customers"),
    path("purchases", billing_api.PurchaseImportView.as_view(), name="api_purchases"),
    path("assignments", billing_api.AssignmentImportView.as_view(), name="api_assignments"),
]
