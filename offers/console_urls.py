from django.urls import path

from offers import console_views

app_name = "console"
urlpatterns = [
    path("", console_views.home, name="home"),
]
