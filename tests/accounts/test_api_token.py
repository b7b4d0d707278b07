"""Staff hand out API keys with `manage.py create_api_token <email>`; a key acts with its user's role."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def create_api_token(email: str) -> str:
    out = StringIO()
    call_command("create_api_token", email, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize("role", ["marketer", "executive", "operator"])
def test_the_command_prints_only_the_key_of_a_user_with_a_role_or_staff(request, role):
    user = request.getfixturevalue(role)

    printed = create_api_token(user.email)

    assert printed == f"{Token.objects.get(user=user).key}\n"


def test_running_it_again_prints_the_same_key(marketer):
    first = create_api_token(marketer.email)

    assert create_api_token(marketer.email.upper()) == first
    assert Token.objects.filter(user=marketer).count() == 1


def test_the_printed_key_acts_with_its_users_role(executive):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {create_api_token(executive.email).strip()}")

    assert client.get("/api/v1/products/no-such-product").status_code == 404
    assert client.post("/api/v1/products", {}, format="json").status_code == 403


def test_an_unknown_email_is_a_clear_error(db):
    with pytest.raises(CommandError, match=r"No user has the email address nobody@example\.com"):
        create_api_token("nobody@example.com")
    assert not Token.objects.exists()


def test_a_customer_without_a_role_gets_no_key(customer):
    with pytest.raises(CommandError, match="customer without a role"):
        create_api_token(customer.email)
    assert not Token.objects.exists()


def test_a_deactivated_user_gets_no_key(marketer):
    marketer.is_active = False
    marketer.save(update_fields=["is_active"])

    with pytest.raises(CommandError, match="deactivated"):
        create_api_token(marketer.email)
