from django.apps import AppConfig
from django.db.models.signals import post_migrate


def site_sync(using="default", **kwargs):
    """Keep the Site row on SITE_URL's host after every migrate, so a changed SITE_URL reaches
    allauth's links and emails at the next deploy (migration 0005 made the row)."""
    from urllib.parse import urlsplit

    from django.conf import settings
    from django.contrib.sites.models import Site

    domain = urlsplit(settings.SITE_URL).netloc
    if domain:
        Site.objects.using(using).update_or_create(
            pk=settings.SITE_ID, defaults={"domain": domain, "name": "Foretaste"}
        )
        Site.objects.clear_cache()


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        post_migrate.connect(site_sync, sender=self, dispatch_uid="accounts.site_sync")
