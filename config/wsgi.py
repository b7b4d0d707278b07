import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

from config import startup  # noqa: E402 (needs the apps loaded, above)

startup.loaded()
