"""Name the site "Foretaste", on SITE_URL's host: allauth puts the site's name and domain in
every email, and with no Site row they said "Hello from !"."""

from urllib.parse import urlsplit

from django.conf import settings
from django.db import migrations


def name_the_site(apps, schema_editor):
    Site = apps.get_model("sites", "Site")
    domain = urlsplit(settings.SITE_URL).netloc or "127.0.0.1:8000"
    Site.objects.update_or_create(pk=settings.SITE_ID, defaults={"domain": domain, "name": "Foretaste"})


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_outbox_message"),
        ("sites", "0002_alter_domain_unique"),
    ]

    operations = [migrations.RunPython(name_the_site, migrations.RunPython.noop)]
