"""A visitor's arm is written once, on their first view, and read ever after: the same arm for the
same visitor, one row even when first views race, and an anonymous visitor's row joins their
account at login unless the account already had one for the offer."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from offers import rules
from offers import services as offer_services
from offers.models import Offer
from tests import factories
from tests.factories import NOW
from trials import selectors, services
from trials.models import Assignment

LATER = NOW + timedelta(days=3)
VARIANTS = [{"name": "short", "weight": 1, "trial_days": 10}, {"name": "long", "weight": 1, "trial_days": 21}]


def visitor(n: int) -> str:
    return f"{n:043d}"  # the shape of a cookie id (43 url-safe characters)


@pytest.fixture
def offer(marketer):
    made = factories.offer(actor=marketer, variants=VARIANTS, holdout_percent=20)
    return offer_services.offer_launch(offer=made, actor=marketer, at=NOW)


def expected_arm(offer, key: str) -> str:
    return rules.arm_for(
        salt=offer.salt,
        customer_key=key,
        holdout_percent=offer.holdout_percent,
        variants=[(v.name, v.weight) for v in offer.variants.all()],
    )


@pytest.mark.django_db
def test_a_first_view_writes_the_arm_of_the_hash_and_a_return_reads_it(offer):
    first = services.assignment_for_visitor(offer=offer, visitor=visitor(1), at=NOW)
    again = services.assignment_for_visitor(offer=offer, visitor=visitor(1), at=LATER)

    assert first.pk == again.pk
    assert Assignment.objects.count() == 1
    assert first.arm == expected_arm(offer, services.visitor_key(visitor(1)))
    assert (first.variant.name if first.variant else rules.HOLDOUT) == first.arm
    stored = Assignment.objects.get()
    assert (stored.visitor, stored.customer_id, stored.assigned_at, stored.first_seen_at) == (
        visitor(1),
        None,
        NOW,
        NOW,
    )
    assert again.first_seen_at == NOW  # the first exposure, never moved by later views


@pytest.mark.django_db
def test_over_many_visitors_every_arm_is_the_hash_and_the_holdout_is_assigned_too(offer):
    arms = {services.assignment_for_visitor(offer=offer, visitor=visitor(n), at=NOW).arm for n in range(60)}

    assert arms == {"short", "long", rules.HOLDOUT}
    for row in Assignment.objects.all():
        assert row.arm == expected_arm(offer, services.visitor_key(row.visitor))


@pytest.mark.django_db
def test_a_customer_is_hashed_by_their_id_and_never_like_a_visitor(offer, customer):
    row = services.assignment_for_visitor(offer=offer, customer=customer, at=NOW)

    assert row.arm == expected_arm(offer, str(customer.pk))
    assert (row.customer_id, row.visitor) == (customer.pk, None)
    assert services.visitor_key(str(customer.pk)) != services.customer_key(customer.pk)


@pytest.mark.django_db
def test_an_imported_assignment_stands_and_its_first_view_is_recorded(offer, customer):
    long = offer.variants.get(name="long")
    imported = Assignment.objects.create(
        offer=offer, customer=customer, variant=long, arm="long", assigned_at=NOW - timedelta(days=30), source="import"
    )

    seen = services.assignment_for_visitor(offer=offer, customer=customer, at=NOW)

    assert seen.pk == imported.pk and seen.arm == "long"
    imported.refresh_from_db()
    assert imported.first_seen_at == NOW
    assert imported.assigned_at == NOW - timedelta(days=30)


@pytest.mark.django_db
def test_an_assignment_needs_someone(offer):
    with pytest.raises(ValueError):
        services.assignment_for_visitor(offer=offer, at=NOW)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", ["visitor", "customer"])
def test_first_views_racing_end_with_one_assignment_and_everyone_sees_its_arm(marketer, customer, who):
    offer = offer_services.offer_launch(
        offer=factories.offer(actor=marketer, variants=VARIANTS, holdout_percent=20), actor=marketer, at=NOW
    )
    threads = 8
    keys = [visitor(n) for n in range(6)] if who == "visitor" else [None]
    for key in keys:
        barrier = threading.Barrier(threads)

        def view(key=key, barrier=barrier):
            try:
                barrier.wait()
                kwargs = {"visitor": key} if key else {"customer": customer}
                return services.assignment_for_visitor(offer=offer, at=NOW, **kwargs).arm
            finally:
                connection.close()

        with ThreadPoolExecutor(threads) as pool:
            arms = list(pool.map(lambda _: view(), range(threads)))
        rows = Assignment.objects.filter(visitor=key) if key else Assignment.objects.filter(customer=customer)
        assert rows.count() == 1
        assert set(arms) == {rows.get().arm}
    assert Assignment.objects.count() == len(keys)


@pytest.mark.django_db
def test_at_login_the_visitors_assignments_join_the_account(marketer, customer, offer):
    other = offer_services.offer_launch(
        offer=factories.offer(actor=marketer, slug="tea-sampler", name="Tea sampler", product_=offer.product),
        actor=marketer,
        at=NOW,
    )
    first = services.assignment_for_visitor(offer=offer, visitor=visitor(7), at=NOW)
    second = services.assignment_for_visitor(offer=other, visitor=visitor(7), at=NOW)

    assert services.assignments_join(customer=customer, visitor=visitor(7)) == services.Joined(2, 0)

    for row in (first, second):
        row.refresh_from_db()
        assert (row.customer_id, row.visitor, row.superseded_by_id) == (customer.pk, visitor(7), None)
    # The arm is the one the visitor saw, not re-hashed from the account.
    assert selectors.assignment_get(offer_id=offer.pk, customer_id=customer.pk).arm == first.arm
    # Joining again, or from another tab, changes nothing.
    assert services.assignments_join(customer=customer, visitor=visitor(7)) == services.Joined(0, 0)


@pytest.mark.django_db
def test_at_login_an_account_that_already_had_an_assignment_keeps_it(offer, customer):
    held = services.assignment_for_visitor(offer=offer, customer=customer, at=NOW)
    anonymous = services.assignment_for_visitor(offer=offer, visitor=visitor(8), at=LATER)

    assert services.assignments_join(customer=customer, visitor=visitor(8)) == services.Joined(0, 1)

    anonymous.refresh_from_db()
    assert (anonymous.customer_id, anonymous.superseded_by_id, anonymous.arm) == (None, held.pk, anonymous.arm)
    assert Assignment.objects.filter(offer=offer, customer=customer).get().pk == held.pk
    # Logged out again, the same browser sees the account's arm, the one that stands.
    assert selectors.assignment_get(offer_id=offer.pk, visitor=visitor(8)).pk == held.pk
    assert services.assignment_for_visitor(offer=offer, visitor=visitor(8), at=LATER).pk == held.pk


@pytest.mark.django_db
def test_an_assignment_without_anyone_is_refused_by_the_database(offer):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Assignment.objects.create(offer=offer, variant=offer.variants.first(), arm="short", assigned_at=NOW)


def _values(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["visitor", "customer", "holdout"])
def test_the_landing_pages_prebuilt_read_gives_what_the_orm_gives(marketer, customer, who):
    offer = offer_services.offer_launch(
        offer=factories.offer(
            actor=marketer, variants=VARIANTS, allowed_countries=["IT"], inventory=50, holdout_percent=20
        ),
        actor=marketer,
        at=NOW,
    )
    if who == "customer":
        made = services.assignment_for_visitor(offer=offer, customer=customer, at=NOW)
    else:
        arms = {}
        for n in range(200):
            row = services.assignment_for_visitor(offer=offer, visitor=visitor(n), at=NOW)
            arms.setdefault(row.arm, row)
        made = arms[rules.HOLDOUT] if who == "holdout" else arms["long"]

    read = selectors.assignment_for_landing(
        slug=offer.slug,
        customer_id=customer.pk if who == "customer" else None,
        visitor=None if who == "customer" else made.visitor,
    )
    orm = Assignment.objects.select_related("offer__product", "variant").get(pk=made.pk)

    assert _values(read) == _values(orm)
    assert _values(read.offer) == _values(orm.offer)
    assert _values(read.offer.product) == _values(orm.offer.product)
    assert read.offer.starts_at.tzinfo is not None and read.offer.allowed_countries == ["IT"]
    # A customer's arm comes from their id, so in some runs the customer is in the holdout too.
    if made.is_holdout:
        assert read.variant is None
    else:
        assert _values(read.variant) == _values(orm.variant)
        assert read.variant.effective_trial_days == orm.variant.effective_trial_days
    assert selectors.assignment_for_landing(slug="no-such-offer", customer_id=None, visitor=visitor(0)) is None


@pytest.mark.django_db
def test_the_first_visits_prebuilt_read_gives_the_offer_its_product_and_variants_as_the_orm_does(marketer):
    offer = offer_services.offer_launch(
        offer=factories.offer(actor=marketer, variants=VARIANTS, allowed_countries=["IT"]), actor=marketer, at=NOW
    )
    orm = Offer.objects.select_related("product").get(pk=offer.pk)

    with CaptureQueriesContext(connection) as queries:
        read = selectors.offer_for_landing(slug=offer.slug)
        variants = list(read.variants.all())
        kinds = [variant.effective_kind for variant in variants]  # falls back to the offer's, read already

    assert len(queries) == 1
    assert _values(read) == _values(orm) and _values(read.product) == _values(orm.product)
    assert [_values(variant) for variant in variants] == [_values(variant) for variant in orm.variants.all()]
    assert kinds == [orm.kind, orm.kind]
    assert selectors.offer_for_landing(slug="no-such-offer") is None


@pytest.mark.django_db
def test_a_draft_is_not_read_for_the_public(marketer):
    draft = factories.offer(actor=marketer)

    assert selectors.offer_for_landing(slug=draft.slug) is None


@pytest.mark.django_db
def test_a_first_view_that_loses_the_race_inside_a_transaction_returns_the_winner_and_leaves_it_usable(offer):
    # new_visitor skips the read, as for a cookie id just drawn: the insert itself meets the row.
    with transaction.atomic():
        first = services.assignment_for_visitor(offer=offer, visitor=visitor(7), at=NOW, new_visitor=True)
        second = services.assignment_for_visitor(offer=offer, visitor=visitor(7), at=LATER, new_visitor=True)
        still_usable = Assignment.objects.count()

    assert second.pk == first.pk and second.arm == first.arm and second.assigned_at == NOW
    assert still_usable == 1
    first.refresh_from_db()  # the returned row is a saved row of this database
    assert first.visitor == visitor(7) and first.source == Assignment.Source.WEB
