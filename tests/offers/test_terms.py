"""The terms a customer reads before they claim: what is free, for how long, what happens after,
the price, the date of the first charge, when the reminders go out and how to cancel.

The texts are compared with reviewed snapshots in ``snapshots/``. After a deliberate change,
write them again with ``UPDATE_SNAPSHOTS=1`` and read every changed file before committing it.
"""

import difflib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from offers.models import Offer, Product, Variant
from offers.terms import Terms, offer_terms, reminder_times, trial_end
from tests import factories

SNAPSHOTS = Path(__file__).parent / "snapshots"
AT = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def coffee_club():
    return Product(sku="coffee-club", name="Coffee club", price_amount=999, currency="EUR", interval="month")


def beans():
    return Product(sku="beans-1kg", name="Beans 1 kg", price_amount=2400, currency="EUR", interval="")


def offer_with_variant(*, product, kind, trial_days=14, trial_price=0, reminder_days=(7, 3), physical=False,
                       variant_kind="", variant_days=None, variant_price=None):  # fmt: skip
    """An offer and its variant in memory: terms are a pure function of them, no database needed."""
    offer = Offer(
        slug="coffee-sampler", name="Coffee sampler", kind=kind, product=product, trial_days=trial_days,
        trial_price=trial_price, currency=product.currency, reminder_days=list(reminder_days), physical=physical,
    )  # fmt: skip
    variant = Variant(
        offer=offer, name="default", kind=variant_kind, trial_days=variant_days, trial_price=variant_price
    )
    return offer, variant


# One case per kind; together they cover a monthly subscription and a one-off product.
CASES = {
    "free_trial": lambda: offer_with_variant(product=coffee_club(), kind="free_trial"),
    "free_trial_no_card": lambda: offer_with_variant(
        product=coffee_club(), kind="free_trial_no_card", trial_days=7, reminder_days=[3]
    ),
    "paid_trial": lambda: offer_with_variant(product=beans(), kind="paid_trial", trial_days=30, trial_price=100),
    "sample_digital": lambda: offer_with_variant(product=beans(), kind="sample"),
    "sample_physical": lambda: offer_with_variant(product=beans(), kind="sample", trial_price=250, physical=True),
    "discount": lambda: offer_with_variant(product=coffee_club(), kind="discount", trial_price=499),
}


def terms_for(case: str, language: str, at: datetime = AT) -> Terms:
    offer, variant = CASES[case]()
    return offer_terms(offer=offer, variant=variant, language=language, at=at)


@pytest.mark.parametrize("language", ["en", "de", "fr", "it", "ru", "pl"])
@pytest.mark.parametrize("case", list(CASES))
def test_the_terms_read_exactly_as_reviewed(case, language):
    text = terms_for(case, language).text + "\n"
    path = SNAPSHOTS / f"terms_{case}_{language}.txt"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"No snapshot {path.name}; write it with UPDATE_SNAPSHOTS=1, then read it."
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True), text.splitlines(keepends=True), str(path), "offer_terms(...)"
            )
        )
        pytest.fail(f"The terms changed. If on purpose, run with UPDATE_SNAPSHOTS=1 and review:\n{diff}")


def test_the_text_is_the_headline_then_one_line_per_term():
    terms = terms_for("free_trial", "en")

    assert terms.text.split("\n") == [terms.headline, *terms.lines]
    assert terms_for("free_trial", "en").text == terms.text


@pytest.mark.parametrize(
    ("at", "charge_day"),
    [
        (AT, "June 15, 2026"),
        (datetime(2026, 6, 20, 23, 59, tzinfo=UTC), "July 4, 2026"),
        (datetime(2026, 12, 25, 0, 0, tzinfo=UTC), "January 8, 2027"),
    ],
)
def test_the_first_charge_is_on_the_claim_date_plus_the_trial_days(at, charge_day):
    offer, variant = CASES["free_trial"]()

    assert trial_end(variant=variant, at=at) == at + timedelta(days=14)
    lines = offer_terms(offer=offer, variant=variant, language="en", at=at).lines
    assert (
        f"If you do not cancel, we charge your card €9.99 for Coffee club on {charge_day}, "
        "and then €9.99 every month until you cancel."
    ) in lines
    assert f"Cancel before {charge_day} and you pay nothing." in lines


def test_a_one_off_product_is_charged_once_and_says_so():
    offer, variant = offer_with_variant(product=beans(), kind="free_trial")

    lines = offer_terms(offer=offer, variant=variant, language="en", at=AT).lines

    assert (
        "If you do not cancel, we charge your card €24.00 for Beans 1 kg on June 15, 2026. "
        "It is a single payment, not a subscription."
    ) in lines


def test_a_yearly_plan_says_every_year():
    product = Product(sku="club-year", name="Coffee club", price_amount=9900, currency="EUR", interval="year")
    offer, variant = offer_with_variant(product=product, kind="free_trial")

    text = offer_terms(offer=offer, variant=variant, language="en", at=AT).text

    assert "and then €99.00 every year until you cancel." in text


def test_the_reminders_go_out_the_configured_days_before_the_end():
    offer, variant = CASES["free_trial"]()

    assert reminder_times(offer=offer, variant=variant, at=AT) == [AT + timedelta(days=7), AT + timedelta(days=11)]
    lines = offer_terms(offer=offer, variant=variant, language="en", at=AT).lines
    assert "We will email you reminders on June 8, 2026 and June 12, 2026, before any charge." in lines


def test_a_single_reminder_is_one_reminder():
    offer, variant = offer_with_variant(product=beans(), kind="sample", reminder_days=[2])

    lines = offer_terms(offer=offer, variant=variant, language="en", at=AT).lines

    assert "We will email you a reminder on June 13, 2026, before your trial ends." in lines


def test_no_reminder_in_the_past_or_at_the_claim_is_promised():
    # 20 days before the end of a 14-day trial is before the claim; 14 days before is the claim itself.
    offer, variant = offer_with_variant(product=beans(), kind="sample", reminder_days=[20, 14, 3])

    assert reminder_times(offer=offer, variant=variant, at=AT) == [AT + timedelta(days=11)]
    text = offer_terms(offer=offer, variant=variant, language="en", at=AT).text
    assert "May" not in text and "June 1," not in text
    assert "We will email you a reminder on June 12, 2026, before your trial ends." in text


def test_without_any_reminder_left_no_reminder_line_is_written():
    offer, variant = offer_with_variant(product=beans(), kind="sample", reminder_days=[])

    assert not any("remind" in line for line in offer_terms(offer=offer, variant=variant, language="en", at=AT).lines)


def test_a_variant_that_overrides_the_days_changes_the_dates_and_the_reminders():
    offer, variant = offer_with_variant(product=coffee_club(), kind="free_trial", variant_days=30)

    terms = offer_terms(offer=offer, variant=variant, language="en", at=AT)

    assert terms.headline == "Free for 30 days"
    assert "Your trial lasts 30 days and ends on July 1, 2026." in terms.lines
    assert "We will email you reminders on June 24, 2026 and June 28, 2026, before any charge." in terms.lines
    assert terms.text != terms_for("free_trial", "en").text


def test_a_variant_that_overrides_the_price_changes_what_is_paid_today():
    offer, variant = offer_with_variant(product=beans(), kind="paid_trial", trial_price=100)
    assert offer_terms(offer=offer, variant=variant, language="en", at=AT).headline == "€1.00 for 14 days"

    offer, variant = offer_with_variant(product=beans(), kind="paid_trial", trial_price=100, variant_price=300)
    terms = offer_terms(offer=offer, variant=variant, language="en", at=AT)
    assert terms.headline == "€3.00 for 14 days"
    assert "Today you pay €3.00 for the trial, and we save your card." in terms.lines


def test_a_variant_that_overrides_the_kind_gets_that_kinds_terms():
    offer, variant = offer_with_variant(product=beans(), kind="sample", variant_kind="discount", variant_price=1800)

    terms = offer_terms(offer=offer, variant=variant, language="en", at=AT)

    assert terms.headline == "Your first purchase for €18.00 instead of €24.00"
    assert "The offer is valid for 14 days, until June 15, 2026." in terms.lines
    assert not any("sample" in line for line in terms.lines)


def test_a_one_day_trial_is_singular():
    offer, variant = offer_with_variant(product=beans(), kind="free_trial_no_card", trial_days=1, reminder_days=[])

    terms = offer_terms(offer=offer, variant=variant, language="en", at=AT)

    assert terms.headline == "Free for 1 day, no card needed"
    assert "Your trial lasts 1 day and ends on June 2, 2026." in terms.lines


def test_a_regional_language_gets_its_language_and_an_unknown_one_gets_english():
    assert terms_for("free_trial", "de-at").text == terms_for("free_trial", "de").text
    assert terms_for("free_trial", "xx").text == terms_for("free_trial", "en").text


def test_the_terms_need_a_moment_not_a_wall_clock_time():
    with pytest.raises(ValueError, match="aware"):
        terms_for("free_trial", "en", at=datetime(2026, 6, 1, 9, 0))


@pytest.mark.django_db
def test_the_terms_of_a_saved_offer_need_no_database_query(django_assert_num_queries):
    saved = factories.offer(kind="free_trial")
    offer = Offer.objects.select_related("product").get(pk=saved.pk)
    variant = offer.variants.get()

    with django_assert_num_queries(0):
        terms = offer_terms(offer=offer, variant=variant, language="fr", at=AT)

    assert terms.headline == "Gratuit pendant 14 jours"


# Russian and Polish choose among three forms by the last digits: 1 and 21 take the first in
# Russian (but 11 and 111 do not), 2-4 and 22-24 the second (but not 12-14), the rest the third.
# Polish keeps the first for exactly 1.
PLURAL_DAYS = {
    "ru": {
        1: "Бесплатно 1 день",
        2: "Бесплатно 2 дня",
        5: "Бесплатно 5 дней",
        11: "Бесплатно 11 дней",
        21: "Бесплатно 21 день",
        22: "Бесплатно 22 дня",
        25: "Бесплатно 25 дней",
        111: "Бесплатно 111 дней",
    },
    "pl": {
        1: "Bezpłatnie przez 1 dzień",
        2: "Bezpłatnie przez 2 dni",
        5: "Bezpłatnie przez 5 dni",
        11: "Bezpłatnie przez 11 dni",
        21: "Bezpłatnie przez 21 dni",
        22: "Bezpłatnie przez 22 dni",
        25: "Bezpłatnie przez 25 dni",
        111: "Bezpłatnie przez 111 dni",
    },
}


@pytest.mark.parametrize("days", [1, 2, 5, 11, 21, 22, 25, 111])
@pytest.mark.parametrize("language", ["ru", "pl"])
def test_russian_and_polish_days_take_the_right_plural_form(language, days):
    offer, variant = offer_with_variant(product=coffee_club(), kind="free_trial", trial_days=days, reminder_days=[])

    terms = offer_terms(offer=offer, variant=variant, language=language, at=AT)

    assert terms.headline == PLURAL_DAYS[language][days]


@pytest.mark.parametrize(
    ("language", "days", "expected"),
    [
        ("ru", 1, "Пробный период длится 1 день и заканчивается 2 июня 2026."),
        ("ru", 22, "Пробный период длится 22 дня и заканчивается 23 июня 2026."),
        ("ru", 111, "Пробный период длится 111 дней и заканчивается 20 сентября 2026."),
        ("pl", 1, "Twój okres próbny trwa 1 dzień i kończy się 2 czerwca 2026."),
        ("pl", 22, "Twój okres próbny trwa 22 dni i kończy się 23 czerwca 2026."),
        ("it", 1, "La tua prova dura 1 giorno e termina il giorno 2 giugno 2026."),
        ("it", 30, "La tua prova dura 30 giorni e termina il giorno 1º luglio 2026."),
    ],
)
def test_the_length_line_agrees_with_its_number(language, days, expected):
    offer, variant = offer_with_variant(product=coffee_club(), kind="free_trial", trial_days=days, reminder_days=[])

    assert expected in offer_terms(offer=offer, variant=variant, language=language, at=AT).lines


@pytest.mark.parametrize(
    ("language", "count", "noun"),
    [
        ("ru", 1, "напоминание"),
        ("ru", 2, "напоминания"),
        ("ru", 5, "напоминания"),
        ("pl", 1, "przypomnienie"),
        ("pl", 2, "przypomnienia"),
        ("pl", 5, "przypomnienia"),
        ("it", 1, "un promemoria"),
        ("it", 2, "dei promemoria"),
    ],
)
def test_the_reminder_line_agrees_with_the_number_of_reminders(language, count, noun):
    offer, variant = offer_with_variant(
        product=coffee_club(), kind="free_trial", trial_days=14, reminder_days=list(range(1, count + 1))
    )

    lines = offer_terms(offer=offer, variant=variant, language=language, at=AT).lines

    assert any(f" {noun} " in line for line in lines)


@pytest.mark.parametrize(
    ("language", "currency", "headline"),
    [
        ("pl", "PLN", "Pierwszy miesiąc za 4,99\xa0zł zamiast 1\xa0234,56\xa0zł"),
        ("ru", "RUB", "Первый месяц за 4,99\xa0₽ вместо 1\xa0234,56\xa0₽"),
        ("it", "EUR", "Il tuo primo mese a 4,99\xa0€ invece di 1.234,56\xa0€"),
    ],
)
def test_money_is_written_the_way_each_language_writes_it(language, currency, headline):
    product = Product(sku="club", name="Club", price_amount=123456, currency=currency, interval="month")
    offer, variant = offer_with_variant(product=product, kind="discount", trial_price=499)

    assert offer_terms(offer=offer, variant=variant, language=language, at=AT).headline == headline
