from django.urls import path

from offers import views

urlpatterns = [
    path("", views.home, name="home"),
    path("o/<slug:slug>/", views.offer_landing, name="offer_landing"),
    path("o/<slug:slug>/buy/", views.offer_buy, name="offer_buy"),
]
