from django.urls import path

from billing import views as billing_views
from offers import views
from trials import claim_views

urlpatterns = [
    path("", views.home, name="home"),
    path("o/<slug:slug>/", views.offer_landing, name="offer_landing"),
    path("o/<slug:slug>/buy/", billing_views.buy, name="offer_buy"),
    path("o/<slug:slug>/buy/<int:checkout_id>/pay/", billing_views.buy_pay, name="offer_buy_pay"),
    path("o/<slug:slug>/claim/", claim_views.claim, name="offer_claim"),
    path("o/<slug:slug>/claim/<int:trial_id>/card/", claim_views.claim_card, name="offer_claim_card"),
    path("o/<slug:slug>/claim/<int:trial_id>/confirm/", claim_views.claim_confirm, name="offer_claim_confirm"),
]
