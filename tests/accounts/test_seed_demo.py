"""`seed_demo` loads the demo logins, and running it again changes nothing."""

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from accounts.demo import DEMO_PASSWORD
from accounts.models import User
from offers.models import Offer, Product


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_its_logins_work(client, capsys):
    call_command("seed_demo")
    first = sorted(User.objects.values_list("email", "is_staff"))
    offers = sorted(Offer.objects.values_list("slug", "status", "salt"))
    call_command("seed_demo")

    assert sorted(User.objects.values_list("email", "is_staff")) == first
    assert sorted(Offer.objects.values_list("slug", "status", "salt")) == offers
    assert {status for _, status, _ in offers} == {"live"}
    assert Product.objects.filter(stripe_price_id__startswith="price_").count() == 2
    assert "[1/" in capsys.readouterr().out
    for email, role in [("marketer@demo.test", "Marketer"), ("executive@demo.test", "Executive")]:
        assert User.objects.get(email=email).groups.filter(name=role).exists()
    assert Group.objects.filter(name__in=["Marketer", "Executive"]).count() == 2
    assert client.login(email="customer@demo.test", password=DEMO_PASSWORD)


@pytest.mark.django_db
def test_seed_demo_refuses_to_run_in_production(settings):
    from django.core.management.base import CommandError

    settings.PRODUCTION = True

    with pytest.raises(CommandError, match="production"):
        call_command("seed_demo")
    assert not User.objects.filter(email="operator@demo.test").exists()
