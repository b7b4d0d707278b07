"""Print the API key of a staff user or a user with a role, creating the key the first time."""

from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token

from accounts.models import User
from accounts.roles import ROLES, has_role


class Command(BaseCommand):
    help = (
        "Print the API key of a staff user, or of a user with a role (Marketer, Executive), creating it if "
        "there is none. The key acts with its user's role."
    )

    def add_arguments(self, parser):
        parser.add_argument("email", help="The user's email address.")

    def handle(self, *args, email: str, **options):
        user = User.objects.filter(email__iexact=email.strip()).first()
        if user is None:
            raise CommandError(f"No user has the email address {email}.")
        if not user.is_active:
            raise CommandError(f"{user.email} is deactivated; an API key would not work for them.")
        if not has_role(user, *ROLES):
            raise CommandError(
                f"{user.email} is a customer without a role. API keys are for staff and for users with the "
                f"{' or '.join(ROLES)} role; give them a role first."
            )
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)
