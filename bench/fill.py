"""Bulk rows for the benchmarks, written by INSERT … SELECT on PostgreSQL so that setting up a
million customers takes minutes, not hours. Every customer is
``bench<i>@example.com``."""

from datetime import datetime


def insert_customers(cursor, *, count: int, joined: datetime) -> None:
    cursor.execute(
        """INSERT INTO accounts_user (password, is_superuser, first_name, last_name, is_staff, is_active,
               date_joined, email, country, preferred_language, canonical_email, signed_up_from)
           SELECT '!', false, '', '', false, true, %s, 'bench' || i || '@example.com',
                  (ARRAY['IT', 'PL', 'DE', 'FR'])[1 + i %% 4], '', 'bench' || i || '@example.com', ''
           FROM generate_series(1, %s) AS i""",
        [joined, count],
    )


def insert_trials(cursor) -> None:
    """A trial for a third of the variants' assignments: one in three converted at its end, the
    others expired."""
    cursor.execute(
        """INSERT INTO trials_trial (assignment_id, offer_id, customer_id, variant_id, status, claimed_at, ends_at,
               converted_at, source, language, shipping_address, stripe_setup_intent_id,
               stripe_payment_intent_id, waiting_reason, charge_attempt, conversion_payment_intent_id,
               conversion_invoice_id, claim_user_agent)
           SELECT a.id, a.offer_id, a.customer_id, a.variant_id,
                  CASE WHEN a.id %% 3 = 0 THEN 'converted' ELSE 'expired' END,
                  a.assigned_at, a.assigned_at + interval '14 days',
                  CASE WHEN a.id %% 3 = 0 THEN a.assigned_at + interval '14 days' END,
                  'import', '', '{}', '', '', '', 0, '', '', ''
           FROM trials_assignment a WHERE a.arm <> 'holdout' AND a.customer_id %% 3 = 0""",
        [],
    )


def insert_purchases(cursor, *, product_id: int, customers: int, count: int, start: datetime) -> None:
    """``count`` regular purchases of random bench customers over 500 days from ``start``."""
    cursor.execute(
        """INSERT INTO billing_purchase (customer_id, product_id, kind, amount, currency, purchased_at, source,
               external_id, recorded_at)
           SELECT (SELECT min(id) FROM accounts_user WHERE email LIKE 'bench%%') + floor(random() * %s)::bigint,
                  %s, 'regular', 500 + floor(random() * 5000)::int, 'EUR',
                  %s + random() * interval '500 days', 'import', 'bench-' || gen_random_uuid(), now()
           FROM generate_series(1, %s) AS i""",
        [customers, product_id, start, count],
    )
