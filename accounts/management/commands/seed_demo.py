"""Load the demo data. Idempotent: running it again changes nothing that is already there."""

from django.core.management.base import BaseCommand

from accounts.demo import DEMO_PASSWORD, DEMO_USERS, user_ensure


class Command(BaseCommand):
    help = "Load demo logins and data (idempotent)."

    def handle(self, *args, **options):
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
