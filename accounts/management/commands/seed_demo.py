"""Load the demo data. Idempotent: running it again changes nothing that is already there."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.demo import DEMO_PASSWORD, DEMO_USERS, user_ensure
from accounts.models import User
from billing.gateway import GatewayError
from offers.demo import demo_offers_ensure, demo_products_ensure


class Command(BaseCommand):
    help = "Load demo logins, products and live offers (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Load demo logins (with their published password) even with FORETASTE_ENV=production.",
        )

    def handle(self, *args, **options):
        if settings.PRODUCTION and not options["allow_production"]:
            raise CommandError(
                "seed_demo creates logins whose password is public; it refuses to run in production "
                "unless given --allow-production."
            )
        steps = [("demo logins", self._users), ("products", self._products), ("offers", self._offers)]
        for number, (label, step) in enumerate(steps, start=1):
            self.stdout.write(f"[{number}/{len(steps)}] {label} …", ending="")
            self.stdout.flush()
            summary = step()
            self.stdout.write(self.style.SUCCESS(f" {summary}"))
        self.stdout.write(self.style.SUCCESS("Demo data is ready."))

    def _users(self) -> str:
        for email, role, is_staff, is_superuser in DEMO_USERS:
            user_ensure(email=email, password=DEMO_PASSWORD, role=role, is_staff=is_staff, is_superuser=is_superuser)
        return f"{len(DEMO_USERS)} users"

    def _products(self) -> str:
        count, synced = demo_products_ensure()
        return f"{count} products" + ("" if synced else " (Stripe unreachable: not synced yet)")

    def _offers(self) -> str:
        try:
            count = demo_offers_ensure(actor=User.objects.get(email="marketer@demo.test"))
        except GatewayError:
            return "left as drafts: Stripe is unreachable, so they cannot launch (run `make run`)"
        return f"{count} live offers"
