"""History imports (billing.imports): customers, purchases and assignments go in once, a second
time changes nothing, and every bad row is named with its line and a plain reason, with nothing
written unless the marketer asked for the valid rows alone."""

import io
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from billing.imports import COLUMNS, history_import_csv, history_import_records, importer, writing
from billing.imports import purchases as purchases_import
from billing.models import Purchase
from offers import services
from tests import factories
from tests.factories import NOW
from trials.models import Assignment, Trial, TrialEvent

pytestmark = pytest.mark.django_db

AT = "2026-06-01T10:00:00+02:00"  # 08:00 UTC, an hour before NOW


def csv_file(kind: str, *rows: str, header: str | None = None, encoding: str = "utf-8") -> io.BytesIO:
    header = header if header is not None else ",".join(COLUMNS[kind])
    return io.BytesIO("".join(f"{line}\n" for line in (header, *rows)).encode(encoding))


def import_csv(kind: str, *rows: str, header: str | None = None, **options):
    return history_import_csv(kind=kind, file=csv_file(kind, *rows, header=header), **options)


def errors_of(result) -> list[tuple]:
    return [(error.row, error.field) for error in result.errors]


def purchase(
    external_id="o-1",
    customer="c-1",
    sku="beans-1kg",
    kind="regular",
    amount="24.00",
    currency="EUR",
    at=AT,
    refund_of="",
) -> str:
    return ",".join([external_id, customer, sku, kind, amount, currency, at, refund_of])


@pytest.fixture
def beans(db):
    return factories.product()


@pytest.fixture
def shop(db, beans):
    """Two customers from the shop, already imported."""
    return {
        "c-1": User.objects.create_user(email="ann@example.com", external_id="c-1"),
        "c-2": User.objects.create_user(email="bob@example.com", external_id="c-2"),
    }


# --- Customers -----------------------------------------------------------------------------------
def test_customers_become_accounts_without_a_usable_password():
    result = import_csv(
        "customers",
        "c-1,Ann.Example@Example.COM,2024-03-01T10:00:00+01:00,de",
        "c-2,bob@example.com,2024-03-02T10:00:00Z,",
    )

    assert (result.created, result.unchanged, result.invalid, result.refused) == (2, 0, 0, False)
    ann = User.objects.get(external_id="c-1")
    assert ann.email == "Ann.Example@example.com"
    assert ann.canonical_email == "ann.example@example.com"
    assert ann.country == "DE"
    assert ann.date_joined == datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    assert not ann.has_usable_password()
    assert User.objects.get(external_id="c-2").country == ""


def test_importing_the_same_customers_again_changes_nothing():
    rows = ["c-1,ann@example.com,2024-03-01T10:00:00+01:00,DE", "c-2,bob@example.com,2024-03-02T10:00:00Z,"]
    import_csv("customers", *rows)
    before = list(User.objects.order_by("pk").values())

    again = import_csv("customers", *rows)

    assert (again.created, again.unchanged, again.refused) == (0, 2, False)
    assert list(User.objects.order_by("pk").values()) == before


def test_an_existing_account_with_the_same_canonical_email_gets_the_external_id(customer):
    # carla.customer@example.com signed up herself; the shop knows her as C-7, in capitals.
    result = import_csv("customers", "C-7,Carla.Customer@EXAMPLE.com,2020-01-01T00:00:00Z,FR")

    assert (result.created, result.attached) == (0, 1)
    customer.refresh_from_db()
    assert customer.external_id == "C-7"
    assert customer.email == "carla.customer@example.com"  # nothing else of her account changes
    assert customer.has_usable_password()
    assert User.objects.filter(canonical_email="carla.customer@example.com").count() == 1
    assert import_csv("customers", "C-7,carla.customer@example.com,2020-01-01T00:00:00Z,FR").unchanged == 1


def test_gmail_dots_and_tags_are_the_same_person():
    User.objects.create_user(email="annb@gmail.com")

    result = import_csv("customers", "c-1,Ann.B+shop@googlemail.com,2024-01-01T00:00:00Z,")

    assert result.attached == 1
    assert User.objects.get(external_id="c-1").email == "annb@gmail.com"


def test_an_email_that_belongs_to_another_customer_is_refused(shop):
    result = import_csv("customers", "c-9,ANN@example.com,2024-01-01T00:00:00Z,")

    assert result.refused
    assert errors_of(result) == [(2, "email")]
    assert "belongs to the customer “c-1”" in result.errors[0].message
    assert not User.objects.filter(external_id="c-9").exists()


def test_a_customer_id_with_other_content_is_an_error_in_the_file_and_against_the_database(shop):
    result = import_csv(
        "customers",
        "c-1,someone.else@example.com,2024-01-01T00:00:00Z,",
        "c-3,cleo@example.com,2024-01-01T00:00:00Z,",
        "c-3,cleo.other@example.com,2024-01-01T00:00:00Z,",
        "c-4,cleo@example.com,2024-01-01T00:00:00Z,",
    )

    assert result.refused
    assert errors_of(result) == [(2, "external_id"), (4, "external_id"), (5, "email")]
    assert "imported before with another email" in result.errors[0].message
    assert "also on line 3" in result.errors[1].message
    assert "Line 3 has the same email" in result.errors[2].message
    assert User.objects.count() == 2


@pytest.mark.parametrize(
    ("row", "field", "words"),
    [
        (",ann@example.com,2024-01-01T00:00:00Z,", "external_id", "Give the customer's external id"),
        (f"{'x' * 256},ann@example.com,2024-01-01T00:00:00Z,", "external_id", "255 characters at most"),
        ("c-1,not-an-email,2024-01-01T00:00:00Z,", "email", "not an email address"),
        ("c-1,,2024-01-01T00:00:00Z,", "email", "Give the customer's email"),
        ("c-1,ann@example.com,2024-01-01T00:00:00,", "created_at", "has no offset"),
        ("c-1,ann@example.com,01/02/2024,", "created_at", "not an ISO 8601 timestamp"),
        ("c-1,ann@example.com,,", "created_at", "Give the time"),
        ("c-1,ann@example.com,2024-01-01T00:00:00Z,XX", "country", "not a country code"),
        ("c-1,ann@example.com,2024-01-01T00:00:00Z,Germany", "country", "not a country code"),
    ],
)
def test_a_bad_customer_value_is_named_with_its_line_and_column(row, field, words):
    result = import_csv("customers", "c-0,zoe@example.com,2024-01-01T00:00:00Z,", row)

    assert result.refused
    assert errors_of(result) == [(3, field)]
    assert words in result.errors[0].message
    assert not User.objects.exists()


# --- Purchases -----------------------------------------------------------------------------------
def test_purchases_go_into_the_ledger_in_minor_units(shop, beans):
    factories.product(sku="beans-jp", name="Beans JP", price_amount=2400, currency="JPY")
    result = import_csv(
        "purchases",
        purchase("o-1"),
        purchase("o-2", customer="c-2", kind="trial_fee", amount="1.5", at="2026-06-01T08:00:00Z"),
        purchase("o-3", sku="beans-jp", kind="sample", amount="300", currency="jpy"),
    )

    assert (result.created, result.unchanged, result.invalid, result.refused) == (3, 0, 0, False)
    rows = {p.external_id: p for p in Purchase.objects.all()}
    assert (rows["o-1"].customer, rows["o-1"].product, rows["o-1"].kind) == (shop["c-1"], beans, "regular")
    assert (rows["o-1"].amount, rows["o-1"].currency, rows["o-1"].source) == (2400, "EUR", "import")
    assert rows["o-1"].purchased_at == datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
    assert (rows["o-2"].amount, rows["o-2"].kind) == (150, "trial_fee")
    assert (rows["o-3"].amount, rows["o-3"].currency) == (300, "JPY")


def test_importing_the_same_purchases_again_changes_nothing(shop):
    rows = [purchase("o-1"), purchase("o-2", amount="12.00"), purchase("r-1", amount="-2.00", refund_of="o-1")]
    import_csv("purchases", *rows)
    before = list(Purchase.objects.order_by("pk").values())

    again = import_csv("purchases", *rows)

    assert (again.created, again.unchanged, again.invalid, again.refused) == (0, 3, 0, False)
    assert list(Purchase.objects.order_by("pk").values()) == before


def test_the_same_record_twice_in_one_file_is_written_once(shop):
    result = import_csv("purchases", purchase("o-1"), purchase("o-1"))

    assert (result.created, result.unchanged) == (1, 1)
    assert Purchase.objects.count() == 1


def test_a_purchase_id_with_other_content_is_an_error_against_the_ledger_and_within_the_file(shop):
    import_csv("purchases", purchase("o-1"))

    result = import_csv("purchases", purchase("o-1", amount="25.00"), purchase("o-2"), purchase("o-2", customer="c-2"))

    assert result.refused
    assert errors_of(result) == [(2, "external_id"), (4, "external_id")]
    assert "recorded before with different content" in result.errors[0].message
    assert "also on line 3 with different content" in result.errors[1].message
    assert Purchase.objects.count() == 1


def test_the_same_external_id_from_the_api_is_another_purchase(shop):
    import_csv("purchases", purchase("o-1"))

    result = history_import_records(
        kind="purchases",
        records=[dict(zip(COLUMNS["purchases"], purchase("o-1", amount="30.00").split(","), strict=True))],
        source="api",
    )

    assert result.created == 1
    assert sorted(Purchase.objects.values_list("source", "amount")) == [("api", 3000), ("import", 2400)]


def test_a_refund_in_the_same_file_as_its_purchase_is_a_negative_row_pointing_at_it(shop):
    result = import_csv(
        "purchases",
        purchase("o-1"),
        purchase("r-1", amount="-4.00", refund_of="o-1", at="2026-06-03T10:00:00+02:00"),
        purchase("r-2", amount="-20.00", refund_of="o-1", at="2026-06-04T10:00:00+02:00"),
    )

    assert (result.created, result.refused) == (3, False)
    original = Purchase.objects.get(external_id="o-1")
    assert sorted(original.refunds.values_list("external_id", "amount")) == [("r-1", -400), ("r-2", -2000)]


def test_a_refund_of_a_purchase_imported_before(shop):
    import_csv("purchases", purchase("o-1"), purchase("r-1", amount="-4.00", refund_of="o-1"))

    result = import_csv("purchases", purchase("r-2", amount="-20.00", refund_of="o-1"))

    assert result.created == 1
    assert Purchase.objects.get(external_id="r-2").refund_of == Purchase.objects.get(external_id="o-1")


def test_a_refund_cannot_exceed_what_is_left_of_the_purchase(shop):
    import_csv("purchases", purchase("o-1"), purchase("r-1", amount="-20.00", refund_of="o-1"))

    result = import_csv(
        "purchases",
        purchase("r-2", amount="-3.00", refund_of="o-1"),
        purchase("r-3", amount="-1.01", refund_of="o-1"),
        purchase("o-2", amount="10.00"),
        purchase("r-4", amount="-10.01", refund_of="o-2"),
    )

    assert errors_of(result) == [(3, "amount"), (5, "amount")]
    assert "The refund of 1.01 EUR is more than is left to refund of “o-1” (1.00 EUR)" in result.errors[0].message
    assert "more than is left to refund of “o-2” (10.00 EUR)" in result.errors[1].message


@pytest.mark.parametrize(
    ("rows", "line", "field", "words"),
    [
        ([purchase("r-1", amount="-4.00")], 2, "amount", "A negative amount is a refund"),
        (
            [purchase("o-1"), purchase("r-1", amount="4.00", refund_of="o-1")],
            3,
            "amount",
            "A refund's amount is negative",
        ),
        ([purchase("r-1", amount="-4.00", refund_of="o-404")], 2, "refund_of", "no import purchase “o-404”"),
        ([purchase("r-1", amount="-4.00", refund_of="o-1"), purchase("o-1")], 2, "refund_of", "higher up in this file"),
        ([purchase("r-1", amount="-4.00", refund_of="r-1")], 2, "refund_of", "cannot refund itself"),
        (
            [
                purchase("o-1"),
                purchase("r-1", amount="-4.00", refund_of="o-1"),
                purchase("r-2", amount="-1.00", refund_of="r-1"),
            ],
            4,
            "refund_of",
            "itself a refund",
        ),
        (
            [purchase("o-1"), purchase("r-1", customer="c-2", amount="-4.00", refund_of="o-1")],
            3,
            "refund_of",
            "same customer, product, kind and currency",
        ),
        (
            [purchase("o-1"), purchase("r-1", kind="sample", amount="-4.00", refund_of="o-1")],
            3,
            "refund_of",
            "same customer, product, kind and currency",
        ),
    ],
)
def test_a_refund_that_does_not_fit_is_refused(shop, rows, line, field, words):
    result = import_csv("purchases", *rows)

    assert result.refused
    assert errors_of(result) == [(line, field)]
    assert words in result.errors[0].message
    assert not Purchase.objects.exists()


@pytest.mark.parametrize(
    ("row", "field", "words"),
    [
        (purchase(external_id=""), "external_id", "Give the purchase's external id"),
        (purchase(customer="c-404"), "customer_external_id", "no customer with the external id “c-404”"),
        (purchase(customer=""), "customer_external_id", "Give the customer's external id"),
        (purchase(sku="tea-500g"), "product_sku", "no product with the SKU “tea-500g”"),
        (purchase(kind="subscription"), "kind", "use regular, trial_fee or sample"),
        (purchase(amount='"24,00"'), "amount", "not an amount"),
        (purchase(amount="twenty"), "amount", "not an amount"),
        (purchase(amount="1e3"), "amount", "not an amount"),
        (purchase(amount="24.001"), "amount", "EUR has 2 decimal places"),
        (purchase(amount="0.00"), "amount", "cannot be zero"),
        (purchase(amount="99999999999999999999"), "amount", "too large"),
        (purchase(currency="EURO"), "currency", "not a currency code"),
        (purchase(currency="XXX"), "currency", "not a currency code"),
        (purchase(currency=""), "currency", "not a currency code"),
        (purchase(at="2026-06-01T10:00:00"), "purchased_at", "has no offset"),
        (purchase(at="2026-06-01"), "purchased_at", "has no offset"),
        (purchase(at="yesterday"), "purchased_at", "not an ISO 8601 timestamp"),
        (purchase(at="1066-10-14T09:00:00Z"), "purchased_at", "out of range"),
        (purchase(at=""), "purchased_at", "Give the time of the purchase"),
    ],
)
def test_a_bad_purchase_value_is_named_with_its_line_and_column(shop, row, field, words):
    result = import_csv("purchases", purchase("o-0"), row)

    assert result.refused
    assert errors_of(result) == [(3, field)]
    assert words in result.errors[0].message
    assert not Purchase.objects.exists()


def test_every_bad_row_is_reported_and_nothing_is_written(shop):
    result = import_csv(
        "purchases",
        purchase("o-1"),
        purchase("o-2", customer="c-404", amount="x"),
        purchase("o-3"),
        purchase("o-4", at="2026-06-01 10:00"),
    )

    assert result.refused
    assert errors_of(result) == [(3, "customer_external_id"), (3, "amount"), (5, "purchased_at")]
    assert (result.rows, result.invalid, result.created) == (4, 2, 0)
    assert not Purchase.objects.exists()


def test_with_skip_invalid_the_valid_rows_are_written_and_the_others_reported(shop):
    result = import_csv(
        "purchases",
        purchase("o-1"),
        purchase("o-2", customer="c-404"),
        purchase("o-3"),
        purchase("r-1", amount="-1.00", refund_of="o-2"),
        skip_invalid=True,
    )

    assert (result.created, result.invalid, result.refused) == (2, 2, False)
    assert errors_of(result) == [(3, "customer_external_id"), (5, "refund_of")]
    assert sorted(Purchase.objects.values_list("external_id", flat=True)) == ["o-1", "o-3"]


def test_rows_are_checked_against_earlier_chunks_of_the_same_file(shop, monkeypatch):
    monkeypatch.setattr(importer, "CHUNK", 2)

    result = import_csv(
        "purchases",
        purchase("o-1"),  # line 2, first chunk
        purchase("o-2"),
        purchase("o-1"),  # line 4: the same record, unchanged
        purchase("o-2", amount="1.00"),  # line 5: different content
        purchase("r-1", amount="-24.00", refund_of="o-1"),
        purchase("r-2", amount="-0.01", refund_of="o-1"),  # line 7: nothing left
    )

    assert errors_of(result) == [(5, "external_id"), (7, "amount")]
    assert "also on line 3 with different content" in result.errors[0].message


def test_refunds_of_one_purchase_spread_over_chunks_never_add_up_to_more_than_it(shop, monkeypatch):
    """Each chunk sees what the chunks before it wrote."""
    monkeypatch.setattr(importer, "CHUNK", 2)

    result = import_csv(
        "purchases",
        purchase("o-1", amount="24.00"),
        purchase("r-1", amount="-10.00", refund_of="o-1"),
        purchase("r-2", amount="-10.00", refund_of="o-1"),  # second chunk: o-1 and r-1 in the chunk before
        purchase("o-2"),
        purchase("r-3", amount="-4.01", refund_of="o-1"),  # line 6, third chunk: 0.01 too much
        purchase("r-4", amount="-4.00", refund_of="o-1"),
        purchase("r-5", amount="-0.01", refund_of="o-1"),  # line 8, fourth chunk: nothing left
        skip_invalid=True,
    )

    assert errors_of(result) == [(6, "amount"), (8, "amount")]
    assert "more than is left to refund of “o-1” (4.00 EUR)" in result.errors[0].message
    assert sorted(Purchase.objects.values_list("external_id", flat=True)) == ["o-1", "o-2", "r-1", "r-2", "r-4"]


def test_a_first_import_of_a_source_asks_the_ledger_only_about_ids_it_may_have_written(shop, monkeypatch):
    monkeypatch.setattr(importer, "CHUNK", 2)
    asked = _spy_on_external_id_lookups(monkeypatch)

    result = import_csv(
        "purchases",
        purchase("o-1"),
        purchase("o-2"),
        purchase("o-3"),  # second chunk: o-3 was certainly not written, o-1 may have been
        purchase("o-1"),
        purchase("r-1", amount="-1.00", refund_of="o-2"),  # third chunk: its original, o-2
    )

    assert (result.created, result.unchanged, result.invalid) == (4, 1, 0)
    assert asked == [["o-1"], ["o-2"]]
    assert Purchase.objects.get(external_id="r-1").refund_of.external_id == "o-2"


def test_an_import_into_a_source_with_rows_asks_the_ledger_about_every_id(shop, monkeypatch):
    assert import_csv("purchases", purchase("o-1")).created == 1
    asked = _spy_on_external_id_lookups(monkeypatch)

    result = import_csv("purchases", purchase("o-1"), purchase("o-2"))

    assert (result.created, result.unchanged) == (1, 1)
    assert [sorted(ids) for ids in asked] == [["o-1", "o-2"]]


def _spy_on_external_id_lookups(monkeypatch) -> list[list[str]]:
    """The external ids each lookup of the ledger asked about (none when there was nothing to ask)."""
    asked = []
    where_in = purchases_import.where_in

    def spy(queryset, name, values):
        values = list(values)
        if name == "external_id" and values:
            asked.append(values)
        return where_in(queryset, name, values)

    monkeypatch.setattr(purchases_import, "where_in", spy)
    return asked


def test_the_ids_an_import_wrote_are_never_forgotten_as_its_filters_fill(monkeypatch):
    monkeypatch.setattr(writing.MaybeWritten, "FIRST", 10)  # filters of 10, 40, 160, 640, 2560 keys
    written = writing.MaybeWritten()
    keys = [f"o-{i}" for i in range(1000)]

    for start in range(0, len(keys), 7):
        written.update(keys[start : start + 7])

    assert all(key in written for key in keys)
    # "Maybe" for an id never written is rare: at most 0.5% for each full filter.
    assert sum(f"x-{i}" in written for i in range(10_000)) < 500


def test_an_external_id_may_hold_characters_that_copy_escapes(shop):
    awkward = 'A\\B\tC "quoted", with a comma'
    result = history_import_records(
        kind="purchases",
        records=[dict(zip(COLUMNS["purchases"], purchase("x").split(","), strict=True)) | {"external_id": awkward}],
    )

    assert result.created == 1
    assert Purchase.objects.get().external_id == awkward


# --- Trials the purchases convert ----------------------------------------------------------------
def claimed_trial(*, customer, offer, claimed_at, status=Trial.Status.ACTIVE) -> Trial:
    return factories.trial(customer=customer, offer=offer, claimed_at=claimed_at, status=status)


@pytest.fixture
def sampler(beans):
    return factories.offer(product_=beans)


def test_a_regular_purchase_converts_the_customers_open_trial_at_the_earliest_purchase(shop, sampler):
    trial = claimed_trial(customer=shop["c-1"], offer=sampler, claimed_at=NOW)

    result = import_csv(
        "purchases",
        purchase("o-0", at="2026-05-30T09:00:00Z"),  # before the claim: converts nothing
        purchase("o-2", at="2026-06-05T09:00:00Z"),
        purchase("o-1", at="2026-06-03T09:00:00Z"),  # the earliest after the claim
        purchase("r-1", amount="-24.00", refund_of="o-1", at="2026-06-04T09:00:00Z"),
    )

    assert result.converted == 1
    trial.refresh_from_db()
    assert (trial.status, trial.converted_at) == (Trial.Status.CONVERTED, datetime(2026, 6, 3, 9, 0, tzinfo=UTC))
    event = TrialEvent.objects.get(trial=trial)
    o_1 = Purchase.objects.get(external_id="o-1")
    assert (event.from_status, event.to_status, event.at) == ("active", "converted", trial.converted_at)
    assert event.note == f"purchase {o_1.pk} (imported)"


def test_only_open_trials_of_offers_leading_to_the_product_convert_and_only_with_regular_purchases(
    shop, sampler, beans
):
    tea = factories.product(sku="tea-500g", name="Tea")
    tea_offer = factories.offer(slug="tea-sampler", product_=tea)
    expired = claimed_trial(customer=shop["c-1"], offer=sampler, claimed_at=NOW, status=Trial.Status.EXPIRED)
    cancelled = claimed_trial(customer=shop["c-2"], offer=sampler, claimed_at=NOW, status=Trial.Status.CANCELLED)
    other_product = claimed_trial(customer=shop["c-2"], offer=tea_offer, claimed_at=NOW)
    later = User.objects.create_user(email="cleo@example.com", external_id="c-3")
    claimed_later = claimed_trial(customer=later, offer=sampler, claimed_at=NOW + timedelta(days=10))

    result = import_csv(
        "purchases",
        purchase("o-1", customer="c-1", at="2026-06-02T09:00:00Z"),
        purchase("o-2", customer="c-2", at="2026-06-02T09:00:00Z"),
        purchase("o-3", customer="c-3", at="2026-06-02T09:00:00Z"),
        purchase("o-4", customer="c-3", kind="trial_fee", amount="1.00", at="2026-06-12T09:00:00Z"),
    )

    assert result.converted == 1
    states = {t.pk: t.status for t in Trial.objects.all()}
    assert states == {
        expired.pk: "converted",
        cancelled.pk: "cancelled",
        other_product.pk: "active",
        claimed_later.pk: "active",
    }


def test_an_expired_trial_converts_only_within_its_conversion_window_as_on_the_web(shop, sampler):
    # Both trials ended on June 15 and the grace is 7 days: a purchase on June 22 still converts one,
    # a purchase on June 23 is an ordinary purchase, as billing.ledger.purchase_record decides.
    assert sampler.grace_days == 7
    on_time = claimed_trial(customer=shop["c-1"], offer=sampler, claimed_at=NOW, status=Trial.Status.EXPIRED)
    too_late = claimed_trial(customer=shop["c-2"], offer=sampler, claimed_at=NOW, status=Trial.Status.EXPIRED)

    result = import_csv(
        "purchases",
        purchase("o-1", customer="c-1", at="2026-06-22T09:00:00Z"),
        purchase("o-2", customer="c-2", at="2026-06-23T09:00:00Z"),
    )

    assert result.converted == 1
    on_time.refresh_from_db()
    too_late.refresh_from_db()
    assert (on_time.status, on_time.converted_at) == ("converted", datetime(2026, 6, 22, 9, 0, tzinfo=UTC))
    assert (too_late.status, too_late.converted_at) == ("expired", None)


def test_a_refused_import_converts_nothing(shop, sampler):
    trial = claimed_trial(customer=shop["c-1"], offer=sampler, claimed_at=NOW)

    result = import_csv("purchases", purchase("o-1", at="2026-06-02T09:00:00Z"), purchase("o-2", customer="c-404"))

    assert result.refused and result.converted == 0
    trial.refresh_from_db()
    assert trial.status == Trial.Status.ACTIVE
    assert not TrialEvent.objects.exists()


# --- Assignments ---------------------------------------------------------------------------------
def assignment(
    customer="c-1",
    offer="coffee-sampler",
    arm="default",
    assigned="2026-06-01T09:00:00Z",
    claimed="",
    ends="",
    outcome="",
    converted="",
) -> str:
    return ",".join([customer, offer, arm, assigned, claimed, ends, outcome, converted])


@pytest.fixture
def ended_offer(beans):
    """An experiment of the past: two variants and a holdout, long over."""
    offer = factories.offer(
        product_=beans,
        holdout_percent=10,
        variants=[{"name": "default"}, {"name": "long", "trial_days": 28}],
    )
    services.offer_launch(offer=offer, actor=None, at=NOW)
    return services.offer_end(offer=offer, actor=None, at=NOW + timedelta(days=1))


CLAIMED = {"claimed": "2026-06-01T10:00:00Z", "ends": "2026-06-15T10:00:00Z"}


def test_assignments_and_their_trials_go_into_an_ended_offer(shop, ended_offer):
    c_3 = User.objects.create_user(email="cleo@example.com", external_id="c-3")
    result = import_csv(
        "assignments",
        assignment("c-1", **CLAIMED, outcome="converted", converted="2026-06-15T10:00:00Z"),
        assignment("c-2", arm="long", **CLAIMED, outcome="pending"),
        assignment("c-3", arm="holdout"),
    )

    assert ended_offer.status == "ended"
    assert (result.created, result.trials, result.refused) == (3, 2, False)
    by_customer = {a.customer_id: a for a in Assignment.objects.select_related("variant")}
    assert (by_customer[shop["c-1"].pk].arm, by_customer[shop["c-1"].pk].source) == ("default", "import")
    assert by_customer[shop["c-2"].pk].variant.name == "long"
    assert (by_customer[c_3.pk].arm, by_customer[c_3.pk].variant) == ("holdout", None)
    converted = Trial.objects.get(customer=shop["c-1"])
    assert (converted.status, converted.source) == ("converted", "import")
    assert converted.converted_at == datetime(2026, 6, 15, 10, 0, tzinfo=UTC)
    assert Trial.objects.get(customer=shop["c-2"]).status == "active"
    assert not Trial.objects.filter(customer=c_3).exists()
    assert list(converted.events.values_list("from_status", "to_status")) == [("", "active"), ("active", "converted")]
    ended_offer.refresh_from_db()
    assert ended_offer.claimed_count == 0  # history does not use up the inventory


@pytest.mark.parametrize(
    ("outcome", "status"),
    [("cancelled", "cancelled"), ("expired", "expired"), ("payment_failed", "payment_failed"), ("pending", "active")],
)
def test_each_outcome_becomes_the_trials_status(shop, ended_offer, outcome, status):
    assert import_csv("assignments", assignment(**CLAIMED, outcome=outcome)).created == 1
    assert Trial.objects.get().status == status


def test_importing_the_same_assignments_again_changes_nothing_even_after_a_pending_trial_converted(shop, ended_offer):
    rows = [assignment("c-1", **CLAIMED, outcome="pending"), assignment("c-2", arm="holdout")]
    import_csv("assignments", *rows)
    trial = Trial.objects.get()
    Trial.objects.filter(pk=trial.pk).update(status="converted", converted_at=NOW + timedelta(days=3))

    again = import_csv("assignments", *rows)

    assert (again.created, again.unchanged, again.refused) == (0, 2, False)
    assert Assignment.objects.count() == 2


def test_an_assignment_never_changes(shop, ended_offer):
    import_csv("assignments", assignment("c-1", arm="default"))

    result = import_csv(
        "assignments", assignment("c-1", arm="long"), assignment("c-2", arm="long"), assignment("c-2", arm="holdout")
    )

    assert errors_of(result) == [(2, "customer_external_id"), (4, "customer_external_id")]
    assert "already assigned to coffee-sampler, differently (arm default" in result.errors[0].message
    assert "also assigned to coffee-sampler on line 3" in result.errors[1].message


@pytest.mark.parametrize(
    ("row", "field", "words"),
    [
        (assignment(customer="c-404"), "customer_external_id", "no customer with the external id “c-404”"),
        (assignment(offer="no-such-offer"), "offer_slug", "no offer “no-such-offer”"),
        (assignment(arm="short"), "arm", "use a variant's name (default, long) or holdout"),
        (assignment(assigned=""), "assigned_at", "Give the time the customer was assigned"),
        (assignment(assigned="2026-06-01T09:00"), "assigned_at", "has no offset"),
        (assignment(arm="holdout", **CLAIMED, outcome="pending"), "claimed_at", "holdout customer cannot have claimed"),
        (
            assignment(claimed="2026-05-31T10:00:00Z", ends="2026-06-15T10:00:00Z", outcome="pending"),
            "claimed_at",
            "claimed before the customer was assigned",
        ),
        (assignment(claimed="2026-06-01T10:00:00Z", outcome="pending"), "trial_ends_at", "needs the time it ends"),
        (
            assignment(claimed="2026-06-01T10:00:00Z", ends="2026-05-31T10:00:00Z", outcome="pending"),
            "trial_ends_at",
            "ends before it was claimed",
        ),
        (assignment(**CLAIMED), "outcome", "needs its outcome"),
        (assignment(**CLAIMED, outcome="won"), "outcome", "not an outcome"),
        (assignment(**CLAIMED, outcome="converted"), "converted_at", "needs the time it converted"),
        (
            assignment(**CLAIMED, outcome="expired", converted="2026-06-15T10:00:00Z"),
            "converted_at",
            "Only a converted trial",
        ),
        (
            assignment(**CLAIMED, outcome="converted", converted="2026-05-01T10:00:00Z"),
            "converted_at",
            "converted before it was claimed",
        ),
        (assignment(outcome="pending"), "outcome", "only for a claimed trial"),
        (assignment(ends="2026-06-15T10:00:00Z"), "trial_ends_at", "only for a claimed trial"),
    ],
)
def test_a_bad_assignment_is_named_with_its_line_and_column(shop, ended_offer, row, field, words):
    result = import_csv("assignments", assignment("c-2"), row)

    assert result.refused
    assert errors_of(result) == [(3, field)]
    assert words in result.errors[0].message
    assert not Assignment.objects.exists()


# --- The file as a whole -------------------------------------------------------------------------
def test_a_file_that_is_not_utf8_is_refused_with_the_line_of_the_first_bad_byte(shop):
    file = csv_file(
        "customers",
        "c-3,cleo@example.com,2024-01-01T00:00:00Z,",
        "c-4,zoë@example.com,2024-01-01T00:00:00Z,",
        encoding="latin-1",
    )

    result = history_import_csv(kind="customers", file=file, skip_invalid=True)

    assert result.refused
    assert errors_of(result) == [(3, "")]
    assert "not UTF-8" in result.errors[0].message and "line 3" in result.errors[0].message
    assert not User.objects.filter(external_id="c-3").exists()


@pytest.mark.parametrize(
    ("header", "words"),
    [
        ("external_id,email,created_at", "it lacks country"),
        ("external_id,email,created_at,country,phone", "does not know: phone"),
        ("external_id,email,email,created_at,country", "names email twice"),
        ("", "it lacks external_id, email, created_at, country"),
    ],
)
def test_a_wrong_header_refuses_the_file_on_line_1(header, words):
    result = import_csv("customers", "c-1,ann@example.com,2024-01-01T00:00:00Z,DE", header=header, skip_invalid=True)

    assert result.refused
    assert errors_of(result) == [(1, "")]
    assert words in result.errors[0].message
    assert "external_id,email,created_at,country" in result.errors[0].message


def test_an_empty_file_is_refused():
    result = history_import_csv(kind="customers", file=io.BytesIO(b""))

    assert result.refused
    assert "The file is empty" in result.errors[0].message


def test_a_file_with_only_the_header_imports_nothing():
    result = import_csv("customers")

    assert (result.rows, result.created, result.refused) == (0, 0, False)


def test_broken_quoting_refuses_the_file_at_its_line():
    result = import_csv(
        "customers", "c-1,ann@example.com,2024-01-01T00:00:00Z,DE", 'c-2,"bob@example.com" x,2024-01-01T00:00:00Z,'
    )

    assert result.refused
    assert errors_of(result) == [(3, "")]
    assert "Line 3 is not valid CSV" in result.errors[0].message
    assert not User.objects.exists()


def test_a_row_with_too_many_or_too_few_fields_is_an_invalid_row():
    result = import_csv(
        "customers",
        "c-1,ann@example.com,2024-01-01T00:00:00Z,DE,extra",
        "c-2,bob@example.com,2024-01-01T00:00:00Z,",
        "c-3,cleo@example.com",
        skip_invalid=True,
    )

    assert errors_of(result) == [(2, ""), (4, "")]
    assert result.errors[0].message == "This line has 5 fields; the header has 4."
    assert list(User.objects.values_list("external_id", flat=True)) == ["c-2"]


def test_line_numbers_count_physical_lines_with_a_bom_crlf_blank_lines_and_quoted_line_breaks():
    text = (
        "\ufeffcountry,email,external_id,created_at\r\n"  # Excel's BOM, CRLF, and the columns in another order
        "DE,ann@example.com,c-1,2024-01-01T00:00:00Z\r\n"
        "\r\n"
        'FR,"bob@example.com",c-2,2024-01-01T00:00:00Z\r\n'
        '"X\r\nY",cleo@example.com,c-3,2024-01-01T00:00:00Z\r\n'
        "XX,dan@example.com,c-4,2024-01-01T00:00:00Z\r\n"
    )

    result = history_import_csv(kind="customers", file=io.BytesIO(text.encode()), skip_invalid=True)

    assert errors_of(result) == [(5, "country"), (7, "country")]
    assert sorted(User.objects.values_list("external_id", "country")) == [("c-1", "DE"), ("c-2", "FR")]


def test_progress_is_reported_in_bytes():
    file = csv_file("customers", "c-1,ann@example.com,2024-01-01T00:00:00Z,DE")
    seen = []

    history_import_csv(kind="customers", file=file, progress=seen.append)

    assert sum(seen) == len(file.getvalue())


# --- JSON records --------------------------------------------------------------------------------
def test_json_records_are_checked_like_rows_and_numbered_from_0(shop):
    good = {
        "external_id": "o-1",
        "customer_external_id": "c-1",
        "product_sku": "beans-1kg",
        "kind": "regular",
        "amount": "24.00",
        "currency": "EUR",
        "purchased_at": AT,
    }

    result = history_import_records(
        kind="purchases",
        records=[
            good,
            {**good, "external_id": "o-2", "amount": 24.0},
            "o-3",
            {**good, "external_id": "o-4", "tip": "1"},
            {**good, "external_id": None},
        ],
    )

    assert result.refused
    assert errors_of(result) == [(1, "amount"), (2, ""), (3, "tip"), (4, "external_id")]
    assert "Give this as a string, like “12.50”" in result.errors[0].message
    assert not Purchase.objects.exists()


def test_json_that_is_not_a_list_is_refused():
    result = history_import_records(kind="customers", records={"external_id": "c-1"})

    assert result.refused
    assert errors_of(result) == [(None, "")]


# --- Writing -------------------------------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_conflict_the_checks_could_not_see_refuses_the_whole_import(shop):
    """Another import writes o-1 and has not committed when this one checks its rows: this one
    cannot see o-1, so its write waits on the unique index and then fails. The constraint holds,
    and this import is refused as a whole."""
    other_checked, other_commit = threading.Event(), threading.Event()
    outcome = {}

    def other_import():
        try:
            with transaction.atomic():
                outcome["other"] = import_csv("purchases", purchase("o-1"))
                other_checked.set()
                other_commit.wait()
        finally:
            other_checked.set()
            connection.close()

    def this_import():
        try:
            outcome["this"] = import_csv("purchases", purchase("o-0"), purchase("o-1"), purchase("o-2"))
        finally:
            connection.close()

    other = threading.Thread(target=other_import)
    other.start()
    other_checked.wait()
    this = threading.Thread(target=this_import)
    this.start()
    _wait_until_a_session_waits_for_a_lock()
    other_commit.set()
    other.join()
    this.join()

    assert outcome["other"].created == 1
    result = outcome["this"]
    assert result.refused
    assert errors_of(result) == [(None, "")]
    assert "Something else changed the same records" in result.errors[0].message
    assert sorted(Purchase.objects.values_list("external_id", flat=True)) == ["o-1"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_id_committed_meanwhile_into_a_source_that_had_none_refuses_the_whole_import(shop, monkeypatch):
    """This import began with no row of its source in the ledger, so it asks the ledger only
    about ids it wrote itself. Another writer commits o-3 while it runs: the unique constraint
    still refuses a second o-3, and the import is refused as a whole, saying so."""
    _another_writer_commits_before_the_first_chunk(monkeypatch, purchase("o-3"))

    result = import_csv("purchases", purchase("o-1"), purchase("o-2"), purchase("o-3"), purchase("o-4"))

    assert result.refused
    assert "Something else changed the same records" in result.errors[0].message
    assert sorted(Purchase.objects.values_list("external_id", flat=True)) == ["o-3"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_refund_of_a_purchase_committed_meanwhile_into_a_source_that_had_none_is_accepted(shop, monkeypatch):
    """The originals that refunds name are always asked of the ledger, even by a first import."""
    _another_writer_commits_before_the_first_chunk(monkeypatch, purchase("x-1"))

    result = import_csv("purchases", purchase("o-1"), purchase("o-2"), purchase("r-1", amount="-1.00", refund_of="x-1"))

    assert (result.created, result.invalid, result.refused) == (3, 0, False)
    assert Purchase.objects.get(external_id="r-1").refund_of.external_id == "x-1"


def _another_writer_commits_before_the_first_chunk(monkeypatch, row: str) -> None:
    """In chunks of 2, the next import has another one import ``row`` and commit it, on its own
    connection, once its first chunk is checked and before it is written."""
    monkeypatch.setattr(importer, "CHUNK", 2)
    reserve = purchases_import.PurchasesImporter._reserve
    other_wrote = []

    def other_writer():
        try:
            assert import_csv("purchases", row).created == 1
        finally:
            connection.close()

    def reserve_after_the_other_wrote(self, count):
        if not other_wrote:
            other_wrote.append(True)
            other = threading.Thread(target=other_writer)
            other.start()
            other.join()
        return reserve(self, count)

    monkeypatch.setattr(purchases_import.PurchasesImporter, "_reserve", reserve_after_the_other_wrote)


def _wait_until_a_session_waits_for_a_lock() -> None:
    """Until another session of this database is blocked on a lock (PostgreSQL says so)."""
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0]:
                return
            threading.Event().wait(0.05)


def _statements(queries, words: str) -> int:
    return sum(1 for query in queries if query["sql"].startswith(words))


def test_purchases_are_written_after_the_rows_already_there_by_the_database_s_fast_path(shop, beans):
    """COPY on PostgreSQL, bulk INSERTs on SQLite; either way the same rows, after those there."""
    Purchase.objects.create(
        customer=shop["c-2"],
        product=beans,
        kind="regular",
        amount=1,
        currency="EUR",
        purchased_at=NOW,
        source="stripe",
        external_id="pi_1",
    )

    with CaptureQueriesContext(connection) as queries:
        result = import_csv("purchases", purchase("o-1"), purchase("r-1", amount="-1.00", refund_of="o-1"))

    copies, inserts = (
        _statements(queries, 'COPY "billing_purchase"'),
        _statements(queries, 'INSERT INTO "billing_purchase"'),
    )
    assert (copies, inserts) == ((1, 0) if connection.vendor == "postgresql" else (0, 1))
    assert result.created == 2
    ids = list(Purchase.objects.order_by("pk").values_list("external_id", flat=True))
    assert ids == ["pi_1", "o-1", "r-1"]  # after the rows already there
    assert Purchase.objects.get(external_id="r-1").refund_of.external_id == "o-1"


@pytest.mark.postgres
def test_the_ledger_s_foreign_keys_are_deferred_again_after_an_import(shop, beans):
    """The import checks them row by row; the rest of the transaction gets them as it was."""
    assert import_csv("purchases", purchase("o-1")).created == 1
    later = User.objects.order_by("-pk").values_list("pk", flat=True).first() + 1000

    # Deferred: a row may name a customer made later in the same transaction.
    Purchase.objects.create(
        customer_id=later, product=beans, kind="regular", amount=1, currency="EUR", purchased_at=NOW,
        source="stripe", external_id="pi_later",
    )  # fmt: skip
    User.objects.create(pk=later, email="later@example.com", canonical_email="later@example.com")
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the deferred checks run here, and hold
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


@pytest.mark.postgres
def test_on_postgresql_purchases_are_written_with_copy_and_stay_consistent(shop, sampler, monkeypatch):
    monkeypatch.setattr(importer, "CHUNK", 3)
    monkeypatch.setattr(writing, "ANALYZE_AFTER", 4)
    trial = claimed_trial(customer=shop["c-1"], offer=sampler, claimed_at=NOW)
    rows = [purchase(f"o-{i}", at=f"2026-06-0{2 + i % 7}T09:00:00Z") for i in range(8)]
    rows.append(purchase("r-1", amount="-24.00", refund_of="o-7", at="2026-06-09T12:00:00Z"))

    with CaptureQueriesContext(connection) as queries:
        result = import_csv("purchases", *rows)

    assert connection.vendor == "postgresql"
    assert (result.created, result.converted) == (9, 1)
    assert _statements(queries, 'COPY "billing_purchase"') == 3  # one per chunk of 3
    assert _statements(queries, 'INSERT INTO "billing_purchase"') == 0
    # The planner's statistics are refreshed once the import has written ANALYZE_AFTER rows
    # (after the second chunk), and not again until the table has doubled.
    assert _statements(queries, 'ANALYZE "billing_purchase"') == 1
    ids = list(Purchase.objects.order_by("pk").values_list("external_id", flat=True))
    assert ids == [f"o-{i}" for i in range(8)] + ["r-1"]  # in the file's order
    trial.refresh_from_db()
    assert trial.converted_at == datetime(2026, 6, 2, 9, 0, tzinfo=UTC)
    assert import_csv("purchases", *rows).unchanged == 9
    # The sequence moved past the reserved ids: an ordinary insert afterwards still works.
    Purchase.objects.create(
        customer=shop["c-2"],
        product=sampler.product,
        kind="regular",
        amount=1,
        currency="EUR",
        purchased_at=NOW,
        source="stripe",
        external_id="pi_1",
    )
