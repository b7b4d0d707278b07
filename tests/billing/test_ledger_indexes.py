"""The ledger keeps only the indexes a query reads (billing.models.Purchase says which query reads
each), and those queries can read them; so can the engine's reads of an offer's units and trials."""

from datetime import timedelta

import pytest
from django.db import connection

from analytics import queries
from analytics.rollups import refunds_between
from tests import factories
from tests.factories import NOW

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

EXPECTED = {
    "billing_purchase_pkey": "(id)",
    "purchase_external_id_unique_per_source": "(source, external_id)",
    "purchase_customer_time": "(customer_id, purchased_at) INCLUDE (id, kind, amount, currency)",
    "billing_purchase_refund_of_id_f6742530": "(refund_of_id)",
    "billing_purchase_trial_id_300d51f7": "(trial_id)",
    "purchase_refunds_by_time": "(purchased_at) WHERE (refund_of_id IS NOT NULL)",
}


def test_the_ledger_has_exactly_the_indexes_its_model_gives_a_reason_for():
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'billing_purchase'")
        found = {name: definition.split(" USING btree ", 1)[1] for name, definition in cursor.fetchall()}

    assert found == EXPECTED


def _plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        # On a test database's few rows a scan is always cheapest; this asks whether an index can
        # serve the query at all.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_the_refunds_that_came_due_are_found_through_their_partial_index():
    due = refunds_between(NOW - timedelta(minutes=1), NOW).values("customer")

    assert "purchase_refunds_by_time" in _plan(due)


def test_each_units_purchase_windows_are_read_from_the_index_alone(marketer):
    """The engine's own window queries, for an offer with a customer: no heap page per purchase."""
    offer = factories.offer(actor=marketer)
    factories.assignment(offer=offer, customer=factories.customer(email="w@example.com"), assigned_at=NOW)
    units = queries.UnitFilter(offer=offer)
    revenue = queries.revenue_expression(offer.currency)
    rows = queries._window_rows(units=units, as_of=NOW, window=timedelta(days=90), revenue=revenue)

    assert "Index Only Scan using purchase_customer_time" in _plan(rows)


def test_an_offers_trials_are_joined_among_that_offers_own(marketer):
    """The engine's window query joins a unit's trial with the offer in the join itself
    (analytics.queries.unit_trial), so that the planner can take the offer's trials from their
    offer index at scale (on a test database's few rows it may probe by assignment instead)."""
    offer = factories.offer(actor=marketer)
    factories.trial(customer=factories.customer(email="w@example.com"), offer=offer)
    units = queries.UnitFilter(offer=offer)
    rows = queries._window_rows(
        units=units, as_of=NOW, window=timedelta(days=90), revenue=queries.revenue_expression(offer.currency)
    )

    plan = _plan(rows)
    scan = plan.split("on trials_trial", 1)[1].split("->", 1)[0]
    assert f"offer_id = {offer.pk}" in scan, plan


def test_an_offers_units_carry_what_the_analytics_read_of_them():
    """(offer, assigned_at) with the columns the engine reads of each unit, so that a plan can
    take an offer's units from the index alone (README, "Rollups: what the dashboards read")."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'assignment_offer_time'")
        (definition,) = cursor.fetchone()

    assert definition.endswith("(offer_id, assigned_at) INCLUDE (id, customer_id, superseded_by_id, arm)")
