from django.urls import path

from billing import views as billing_views
from trials import views

urlpatterns = [
    path("", views.me, name="me"),
    path("data.json", views.me_data, name="me_data"),
    path("trials/<int:trial_id>/cancel/", views.trial_cancel, name="trial_cancel"),
    path("cancel/<str:token>/", views.trial_cancel_link, name="trial_cancel_link"),
    path("trials/<int:trial_id>/pay/", views.trial_pay, name="trial_pay"),
    path("trials/<int:trial_id>/feedback/", views.trial_feedback, name="trial_feedback"),
    path(
        "subscriptions/<int:subscription_id>/cancel/",
        billing_views.subscription_cancel,
        name="subscription_cancel",
    ),
]
