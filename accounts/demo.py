"""The demo cast that `make run` logs in with. Also used by the tests' shared cast."""

from allauth.account.models import EmailAddress
from django.contrib.auth.models import Group
from django.db import transaction

from accounts.models import User
from accounts.roles import EXECUTIVE, MARKETER

DEMO_PASSWORD = "foretaste-demo"  # noqa: S105 (published in README; demo data only)
DEMO_USERS = (
    # (email, role, is_staff, is_superuser)
    ("marketer@demo.test", MARKETER, False, False),
    ("executive@demo.test", EXECUTIVE, False, False),
    ("customer@demo.test", None, False, False),
    ("operator@demo.test", None, True, True),
)


@transaction.atomic
def user_ensure(*, email: str, password: str, role: str | None = None, is_staff=False, is_superuser=False) -> User:
    """Create a user with a verified email and the given role, or bring an existing one back to
    exactly that state. Safe to run any number of times."""
    user, created = User.objects.get_or_create(
        email=email, defaults={"is_staff": is_staff, "is_superuser": is_superuser}
    )
    if created or not user.check_password(password):
        user.set_password(password)
    user.is_staff, user.is_superuser, user.is_active = is_staff, is_superuser, True
    user.save()
    EmailAddress.objects.update_or_create(user=user, email=email, defaults={"verified": True, "primary": True})
    if role:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user
