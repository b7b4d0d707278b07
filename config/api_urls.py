"""The JSON API under /api/v1/. Each app adds its own routes here."""

urlpatterns: list = []
