from django.urls import path

import billing.console_views
import trials.console_views
from offers import console_views as views

app_name = "console"
urlpatterns = [
    path("", views.home, name="home"),
    path("planning.json", views.planning, name="planning"),
    path("offers/new/", views.offer_new, name="offer_new"),
    path("offers/<slug:slug>/", views.offer_detail, name="offer"),
    path("offers/<slug:slug>/edit/", views.offer_edit, name="offer_edit"),
    path("offers/<slug:slug>/preview/", views.offer_preview, name="offer_preview"),
    path("offers/<slug:slug>/trials/", trials.console_views.offer_trials, name="offer_trials"),
    path("offers/<slug:slug>/trials/<int:trial_id>/", trials.console_views.offer_trial, name="offer_trial"),
    path("offers/<slug:slug>/feedback/", trials.console_views.offer_feedback, name="offer_feedback"),
    path(
        "offers/<slug:slug>/feedback/<int:feedback_id>/answer/",
        trials.console_views.feedback_answer,
        name="feedback_answer",
    ),
    path(
        "offers/<slug:slug>/<str:action>/",
        views.offer_action,
        name="offer_action",
    ),
    path("products/", views.product_list, name="products"),
    path("products/new/", views.product_new, name="product_new"),
    path("products/<slug:sku>/edit/", views.product_edit, name="product_edit"),
    path("imports/", billing.console_views.imports_upload, name="imports"),
]
