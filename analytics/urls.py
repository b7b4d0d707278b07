from django.urls import path

from analytics import views

app_name = "dashboard"
urlpatterns = [
    path("", views.home, name="home"),
    path("offers/<slug:slug>/", views.offer, name="offer"),
]
