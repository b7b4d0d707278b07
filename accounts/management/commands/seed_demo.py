"""Load the demo data. Idempotent: running it again changes nothing that is already there."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.demo import DEMO_PASSWORD, DEMO_USERS, user_ensure


class Command(BaseCommand):
    help = "Load demo logins and data (idempotent)."

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
        steps = [("demo logins", self._users)]
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
