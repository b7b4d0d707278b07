"""Importing customers: they become accounts with no usable password (they set one with
"forgot password"). A customer whose canonical email already has an account without an
external id is that account: the external id is attached to it, and nothing else of it changes.

The content compared on a second import is the email (canonically: case, Gmail dots and +tags
don't count) and the country where both have one; ``created_at`` only sets the date a new
account joined, since an account that existed keeps its own."""

from datetime import datetime
from typing import NamedTuple

from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import IntegrityError
from django.db.models import Case, Value, When

from accounts.models import User
from billing.imports import values
from billing.imports.importer import Importer
from billing.imports.writing import where_in
from config.batches import batches
from offers.money import countries
from offers.rules import canonical_email

MAX_EMAIL = 254


class Customer(NamedTuple):
    row: int
    external_id: str
    email: str
    canonical: str
    created_at: datetime
    country: str

    def same_as(self, canonical: str, country: str) -> bool:
        """The same customer as one with this canonical email and country (either may lack one)."""
        return self.canonical == canonical and (not self.country or not country or self.country == country)


class Known(NamedTuple):
    pk: int
    canonical: str
    country: str


class Attach(NamedTuple):
    """An account that existed without an external id, and the one it gets."""

    pk: int
    external_id: str
    row: int


class CustomersImporter(Importer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.email_valid = EmailValidator()
        self.countries = countries()

    def parse(self, row, fields):
        external_id, email, created_at, country = fields
        ok = True
        if problem := values.external_id_problem(external_id, "customer's external id (their id in your shop or till)"):
            ok = False
            self.bad(row, "external_id", problem)
        if not email:
            ok = False
            self.bad(row, "email", "Give the customer's email address.")
        else:
            try:
                self.email_valid(email)
                if len(email) > MAX_EMAIL:
                    raise ValidationError("too long")
            except ValidationError:
                ok = False
                self.bad(row, "email", f"“{email}” is not an email address.")
        moment = self.moment(
            row, "created_at", created_at, missing="Give the time the customer was created, with an offset."
        )
        ok = ok and moment is not None
        country = country.upper()
        if country and country not in self.countries:
            ok = False
            self.bad(
                row,
                "country",
                f"“{country}” is not a country code (ISO 3166-1 alpha-2, like DE or FR); or leave it empty.",
            )
        if not ok:
            return None
        return Customer(row, external_id, User.objects.normalize_email(email), canonical_email(email), moment, country)

    def check_and_write(self, parsed: list[Customer]):
        by_external_id: dict[str, Known] = {}
        users = User.objects.values_list("pk", "external_id", "canonical_email", "country")
        for pk, external_id, canonical, country in where_in(users, "external_id", {r.external_id for r in parsed}):
            by_external_id[external_id] = Known(pk, canonical, country)
        by_canonical: dict[str, list[tuple[int, str | None]]] = {}
        users = User.objects.values_list("pk", "canonical_email", "external_id")
        for pk, canonical, external_id in where_in(users, "canonical_email", {r.canonical for r in parsed}):
            by_canonical.setdefault(canonical, []).append((pk, external_id))
        for accounts in by_canonical.values():
            accounts.sort()  # the oldest account first

        seen: dict[str, Customer] = {}  # external id → record, for this chunk
        seen_email: dict[str, Customer] = {}  # canonical email → record, for this chunk
        attached_pks: set[int] = set()
        new: list[Customer] = []
        attach: list[Attach] = []
        for record in parsed:
            row, external_id, email, canonical = record.row, record.external_id, record.email, record.canonical
            earlier, known = seen.get(external_id), by_external_id.get(external_id)
            if earlier is not None or known is not None:
                self.repeat(
                    row,
                    "external_id",
                    same=record.same_as(earlier.canonical, earlier.country)
                    if earlier
                    else record.same_as(known.canonical, known.country),
                    line=earlier.row if earlier else self.lines.get(known.pk),
                    in_file=lambda where, external_id=external_id: (
                        f"The customer “{external_id}” is also on {where} with another email or country."
                    ),
                    before=f"The customer “{external_id}” was imported before with another email or country; an "
                    "import does not change customers.",
                )
                continue
            other = seen_email.get(canonical)
            if other is not None:
                self.bad(row, "email", self._same_email(other.row, other.external_id))
                continue
            accounts = by_canonical.get(canonical, [])
            free = [pk for pk, account_id in accounts if account_id is None and pk not in attached_pks]
            if free:
                attached_pks.add(free[0])
                attach.append(Attach(free[0], external_id, row))
            elif accounts:
                pk, account_external_id = accounts[0]
                line = self.lines.get(pk)
                self.bad(
                    row,
                    "email",
                    self._same_email(line, account_external_id)
                    if line is not None
                    else f"The email {email} belongs to the customer “{account_external_id}” "
                    "(case, Gmail dots and +tags aside); one email is one customer.",
                )
                continue
            else:
                new.append(record)
            seen[external_id] = record
            seen_email[canonical] = record

        self._write(new, attach)

    def _same_email(self, line: int, external_id: str) -> str:
        return (
            f"{self.where(line).capitalize()} has the same email for the customer “{external_id}”; "
            "one email is one customer."
        )

    def _write(self, new: list[Customer], attach: list[Attach]) -> None:
        users = [
            User(
                email=record.email,
                canonical_email=record.canonical,
                external_id=record.external_id,
                date_joined=record.created_at,
                country=record.country,
                password=make_password(None),
            )
            for record in new
        ]
        User.objects.bulk_create(users, batch_size=500)
        self.statistics.wrote(User, len(users))
        for user, record in zip(users, new, strict=True):
            self.lines.add(user.pk, record.row)
        self.result.created += len(users)
        for part in batches(attach, 500):
            changed = User.objects.filter(pk__in=[a.pk for a in part], external_id__isnull=True).update(
                external_id=Case(*[When(pk=a.pk, then=Value(a.external_id)) for a in part])
            )
            if changed != len(part):
                raise IntegrityError("an account was given an external id by someone else meanwhile")
            for a in part:
                self.lines.add(a.pk, a.row)
        self.result.attached += len(attach)
