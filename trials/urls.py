from django.urls import path

from trials import views

urlpatterns = [
    path("", views.me, name="me"),
    path("data.json", views.me_data, name="me_data"),
]
