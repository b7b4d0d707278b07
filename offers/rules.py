"""Pure rules about offers: no database, time passed in as ``at``.

Kept apart from models and services so that each rule can be tested on plain values, and so
that the same rule serves the console, the API, the landing page and the claim.
"""

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

HOLDOUT = "holdout"
AUTO_CHARGE_KINDS = frozenset({"free_trial", "paid_trial"})
CARD_KINDS = frozenset({"free_trial", "paid_trial"})
MIN_DAYS_BEFORE_CHARGE = 2
_GMAIL_DOMAINS = {"gmail.com", "googlemail.com"}
_UNIT_SCALE = float(2**64)


# --- Assignment ------------------------------------------------------------------------------
def assignment_unit(*, salt: str, customer_key: str) -> float:
    """A number in [0, 1) fixed by the offer's salt and the customer: the same inputs give the
    same number on every machine and in every release (SHA-256, not Python's ``hash``)."""
    digest = hashlib.sha256(f"{salt}:{customer_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _UNIT_SCALE


def arm_for(*, salt: str, customer_key: str, holdout_percent: float, variants: Sequence[tuple[str, int]]) -> str:
    """The arm (a variant's name, or ``holdout``) of one customer in one offer.

    The first ``holdout_percent`` of the unit interval is the holdout; the rest is split between
    the variants in proportion to their weights, in the order given.
    """
    weights = [(name, weight) for name, weight in variants if weight > 0]
    total = sum(weight for _, weight in weights)
    if total <= 0:
        raise ValueError("at least one variant needs a positive weight")
    if not 0 <= holdout_percent < 100:
        raise ValueError("the holdout must be at least 0% and below 100%")
    unit = assignment_unit(salt=salt, customer_key=customer_key)
    holdout = holdout_percent / 100
    if unit < holdout:
        return HOLDOUT
    point = (unit - holdout) / (1 - holdout) * total
    running = 0
    for name, weight in weights:
        running += weight
        if point < running:
            return name
    return weights[-1][0]


# --- Deduplication ---------------------------------------------------------------------------
def canonical_email(email: str) -> str:
    """One person, one address: lower case, and for Gmail the dots and ``+tags`` removed
    (Gmail delivers ann.b+x@gmail.com to annb@gmail.com)."""
    local, _, domain = email.strip().lower().rpartition("@")
    if not local or not domain:
        return email.strip().lower()
    if domain in _GMAIL_DOMAINS:
        local = local.split("+", 1)[0].replace(".", "")
        domain = "gmail.com"
    return f"{local}@{domain}"


_ADDRESS_WORDS = {
    "street": "st",
    "str": "st",
    "strasse": "st",
    "straße": "st",
    "avenue": "ave",
    "av": "ave",
    "road": "rd",
    "apartment": "apt",
    "appartement": "apt",
    "flat": "apt",
    "suite": "ste",
    "boulevard": "blvd",
    "drive": "dr",
    "lane": "ln",
}


def normalized_address(*, line1: str, line2: str = "", postal_code: str, city: str, country: str) -> str:
    """A shipping address reduced to what identifies the door: case, accents, punctuation and
    common abbreviations do not make a second address for a second free sample."""

    def words(text: str) -> list[str]:
        folded = unicodedata.normalize("NFKD", text.replace("ß", "ss")).encode("ascii", "ignore").decode().lower()
        folded = re.sub(r"(\d)([a-z])", r"\1 \2", folded)
        folded = re.sub(r"strasse\b", " st", folded)
        return [_ADDRESS_WORDS.get(word, word) for word in re.findall(r"[a-z0-9]+", folded)]

    postal = re.sub(r"[^a-z0-9]", "", postal_code.lower())
    return "|".join([" ".join(words(line1 + " " + line2)), postal, " ".join(words(city)), country.strip().upper()])


# --- Reminders -------------------------------------------------------------------------------
def default_reminder_days(*, trial_days: int) -> list[int]:
    """7 and 3 days before the end where the trial is long enough; otherwise what fits, keeping
    one at least two days before the charge whenever the trial is that long."""
    days = [d for d in (7, 3) if d < trial_days]
    if not days and trial_days > MIN_DAYS_BEFORE_CHARGE:
        days = [MIN_DAYS_BEFORE_CHARGE]
    return days


def reminder_problems(*, kind: str, trial_days: int, reminder_days: Sequence[int]) -> list[str]:
    """Why a reminder schedule cannot be kept, in plain words; empty when it can."""
    problems = []
    if any(day <= 0 for day in reminder_days):
        problems.append("Reminders are counted in days before the end, so each must be 1 or more.")
    if any(day >= trial_days for day in reminder_days):
        problems.append(
            f"A reminder must fall inside the {trial_days}-day trial (fewer than {trial_days} days before the end)."
        )
    if len(set(reminder_days)) != len(reminder_days):
        problems.append("The same reminder day is listed twice.")
    if kind in AUTO_CHARGE_KINDS and not any(day >= MIN_DAYS_BEFORE_CHARGE for day in reminder_days):
        problems.append(
            "This kind charges the card automatically, so it needs at least one reminder two or more "
            "days before the charge."
        )
    return problems


# --- Availability ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Availability:
    open: bool
    reason: str = ""


def availability(
    *,
    status: str,
    starts_at: datetime,
    ends_at: datetime | None,
    inventory: int | None,
    claimed: int,
    daily_limit: int | None,
    claimed_today: int,
    at: datetime,
) -> Availability:
    """Can the offer take a claim at ``at``? The reason says why not, for the customer."""
    if status != "live":
        return Availability(False, "paused" if status == "paused" else "not_live")
    if at < starts_at:
        return Availability(False, "not_started")
    if ends_at is not None and at >= ends_at:
        return Availability(False, "ended")
    if inventory is not None and claimed >= inventory:
        return Availability(False, "sold_out")
    if daily_limit is not None and claimed_today >= daily_limit:
        return Availability(False, "daily_limit")
    return Availability(True)


# --- Eligibility -----------------------------------------------------------------------------
def eligibility_problem(
    *,
    eligibility: str,
    recent_purchase_days: int | None,
    allowed_countries: Sequence[str],
    country: str,
    last_purchase_at: datetime | None,
    at: datetime,
) -> str:
    """Why this customer may not claim, as a short code; empty when they may."""
    if allowed_countries and (country or "").upper() not in allowed_countries:
        return "country"
    if eligibility == "new_customers" and last_purchase_at is not None:
        return "not_new"
    if (
        eligibility == "no_recent_purchase"
        and last_purchase_at is not None
        and (at - last_purchase_at).days < (recent_purchase_days or 0)
    ):
        return "recent_purchase"
    return ""
