"""Load the demo data. Idempotent: running it again changes nothing that is already there."""

import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from accounts.demo import DEMO_PASSWORD, DEMO_USERS, user_ensure
from accounts.demo_history import HistoryRefused, history_ensure
from accounts.demo_story import CUSTOMERS_PER_OFFER, DEFAULT_CUSTOMERS, PURCHASES_PER_YEAR, STORY
from accounts.models import User
from analytics import rollups
from billing.gateway import GatewayError
from offers.demo import demo_offers_ensure, demo_products_ensure


class Command(BaseCommand):
    help = (
        "Load demo logins, products and live offers, and a history of offers with planted effects "
        "(README, “Demo data”). Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Load demo logins (with their published password) even with FORETASTE_ENV=production.",
        )
        parser.add_argument(
            "--customers",
            type=int,
            default=DEFAULT_CUSTOMERS,
            help=f"Customers in the history (default {DEFAULT_CUSTOMERS:,}; 1000000 for the benchmarks; 0 for none).",
        )
        parser.add_argument(
            "--offers",
            type=int,
            default=None,
            help=f"Offers in the history (default: one per {CUSTOMERS_PER_OFFER:,} customers, at least the story's "
            f"{len(STORY)}).",
        )
        parser.add_argument(
            "--purchases-per-year",
            type=float,
            default=PURCHASES_PER_YEAR,
            help=f"Regular purchases a customer makes a year outside the window an offer is measured over, on "
            f"average (default {PURCHASES_PER_YEAR:g}; 11 gives the benchmarks' ten purchases a customer).",
        )
        parser.add_argument(
            "--no-progress", dest="progress", action="store_false", help="Do not show the progress bar."
        )

    def handle(self, *args, customers, offers, purchases_per_year, progress, **options):
        if settings.PRODUCTION and not options["allow_production"]:
            raise CommandError(
                "seed_demo creates logins whose password is public; it refuses to run in production "
                "unless given --allow-production."
            )
        if customers < 0:
            raise CommandError("--customers cannot be negative.")
        if not 0 <= purchases_per_year <= 365:
            raise CommandError("--purchases-per-year is between 0 and 365.")
        if offers is not None and offers < len(STORY):
            raise CommandError(f"--offers is at least {len(STORY)}, the offers of the story.")
        self.customers = customers
        self.offers = offers if offers is not None else max(len(STORY), customers // CUSTOMERS_PER_OFFER)
        self.purchases_per_year = purchases_per_year
        self.progress = progress
        steps = [
            ("demo logins", self._users),
            ("products", self._products),
            ("offers", self._offers),
            ("history", self._history),
            ("rollups", self._rollups),
        ]
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

    def _rollups(self) -> str:
        """The dashboards read the rollups: build them now rather than a minute later from beat."""
        built = rollups.rebuild()
        return f"{built.units:,} units, as of {built.as_of:%Y-%m-%d %H:%M:%S} UTC"

    def _history(self) -> str:
        if not self.customers:
            return "none asked for"
        self.stdout.write("")
        bar = tqdm(total=self.customers, unit=" customers", desc="history", file=sys.stderr, disable=not self.progress)
        try:
            written = history_ensure(
                customers=self.customers,
                offers=self.offers,
                actor=User.objects.get(email="marketer@demo.test"),
                purchases_per_year=self.purchases_per_year,
                progress=bar.update,
            )
        except GatewayError:
            return "not loaded: Stripe is unreachable, so its offers cannot launch (run `make run`)"
        except HistoryRefused as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        return (
            f"{self.customers:,} customers over {self.offers} offers: {written['customers']:,} customers, "
            f"{written['assignments']:,} assignments, {written['trials']:,} trials and {written['purchases']:,} "
            f"purchases written now ({written['skipped']:,} customers were there already)"
        )
