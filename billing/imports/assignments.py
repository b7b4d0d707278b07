"""Importing assignments (and, when claimed, their trials) from before Foretaste or from another
tool, into offers of any status. The arm and the outcome are taken as given: they were decided
elsewhere. Imported trials do not count against an offer's inventory; a pending one is an open
trial like any other, which a purchase imported later converts."""

from datetime import datetime
from typing import NamedTuple

from billing.imports.formats import OUTCOMES
from billing.imports.importer import WithCustomers
from billing.imports.writing import where_in
from offers.models import Offer, Variant
from trials import services as trial_services
from trials.models import Assignment, Trial

HOLDOUT = Assignment.HOLDOUT
CONVERTED = "converted"  # the outcome that has a conversion time (OUTCOMES' key)


class Content(NamedTuple):
    """What an assignment is; the same offer and customer with other content is an error."""

    arm: str
    assigned_at: datetime
    claimed_at: datetime | None
    ends_at: datetime | None
    status: str | None  # the trial's, when claimed
    converted_at: datetime | None

    def same_as(self, known: "Content") -> bool:
        """This, read from a file, against ``known``, as recorded. A trial imported as pending
        (active) may have moved on since, by a purchase or a job: that is still the same record."""
        if (self.arm, self.assigned_at, self.claimed_at, self.ends_at) != (
            known.arm,
            known.assigned_at,
            known.claimed_at,
            known.ends_at,
        ):
            return False
        if self.claimed_at is None or self.status == Trial.Status.ACTIVE:
            return True
        return (self.status, self.converted_at) == (known.status, known.converted_at)


class Record(NamedTuple):
    """An assignment as read from the file."""

    row: int
    offer_id: int
    customer_id: int
    variant_id: int | None
    content: Content
    customer: str  # the customer's external id and the offer's slug, for messages
    slug: str


class Known(NamedTuple):
    pk: int
    content: Content


ASSIGNED_MISSING = "Give the time the customer was assigned, with an offset."
MOMENTS = (("assigned_at", True), ("claimed_at", False), ("trial_ends_at", False), ("converted_at", False))


class AssignmentsImporter(WithCustomers):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.offers: dict[str, tuple[int, dict[str, int]]] = {}
        for offer_id, slug in Offer.objects.values_list("pk", "slug"):
            self.offers[slug] = (offer_id, {})
        by_id = {offer_id: variants for offer_id, variants in self.offers.values()}
        for offer_id, name, variant_id in Variant.objects.values_list("offer_id", "name", "pk"):
            by_id[offer_id][name] = variant_id

    def _moments(self, row: int, texts: tuple[str, ...]) -> list[datetime | None] | None:
        """The four timestamps (None where empty), or None with the row marked bad."""
        ok, moments = True, []
        for (name, needed), text in zip(MOMENTS, texts, strict=True):
            moment = self.moment(row, name, text, missing=ASSIGNED_MISSING if needed else "")
            ok = ok and (moment is not None or not (text or needed))
            moments.append(moment)
        return moments if ok else None

    def parse(self, row, fields):
        customer, slug, arm, assigned_at, claimed_at, ends_at, outcome, converted_at = fields
        ok = True
        customer_id = self.customer_id(row, customer)
        ok = ok and customer_id is not None
        offer = self.offers.get(slug)
        variant_id = None
        if offer is None:
            ok = False
            self.bad(row, "offer_slug", f"There is no offer “{slug}”." if slug else "Give the offer's slug.")
        elif arm != HOLDOUT:
            variant_id = offer[1].get(arm)
            if variant_id is None:
                names = ", ".join(sorted(offer[1])) or "none"
                ok = False
                self.bad(row, "arm", f"“{arm}” is not an arm of {slug}: use a variant's name ({names}) or {HOLDOUT}.")
        moments = self._moments(row, (assigned_at, claimed_at, ends_at, converted_at))
        ok = ok and moments is not None
        if outcome and outcome not in OUTCOMES:
            ok = False
            self.bad(row, "outcome", f"“{outcome}” is not an outcome: use {', '.join(OUTCOMES)}; or leave it empty.")
        if not ok:
            return None
        assigned, claimed, ends, converted = moments
        if claimed is None:
            for name, value in (("trial_ends_at", ends_at), ("outcome", outcome), ("converted_at", converted_at)):
                if value:
                    ok = False
                    self.bad(row, name, "This is only for a claimed trial; with claimed_at empty, leave it empty.")
        elif arm == HOLDOUT:
            ok = False
            self.bad(row, "claimed_at", "The holdout sees no offer, so a holdout customer cannot have claimed it.")
        else:
            ok = self._claim_fits(row, assigned, claimed, ends, outcome, converted)
        if not ok:
            return None
        status = OUTCOMES[outcome] if claimed is not None else None
        content = Content(arm, assigned, claimed, ends, status, converted)
        return Record(row, offer[0], customer_id, variant_id, content, customer, slug)

    def _claim_fits(self, row, assigned, claimed, ends, outcome, converted) -> bool:
        ok = True
        if claimed < assigned:
            ok = False
            self.bad(row, "claimed_at", "The trial was claimed before the customer was assigned.")
        if ends is None:
            ok = False
            self.bad(row, "trial_ends_at", "A claimed trial needs the time it ends (or ended).")
        elif ends < claimed:
            ok = False
            self.bad(row, "trial_ends_at", "The trial ends before it was claimed.")
        if not outcome:
            ok = False
            self.bad(row, "outcome", f"A claimed trial needs its outcome: {', '.join(OUTCOMES)}.")
        elif outcome == CONVERTED and converted is None:
            ok = False
            self.bad(row, "converted_at", "A converted trial needs the time it converted.")
        elif outcome != CONVERTED and converted is not None:
            ok = False
            self.bad(row, "converted_at", "Only a converted trial has a conversion time.")
        elif converted is not None and converted < claimed:
            ok = False
            self.bad(row, "converted_at", "The trial converted before it was claimed.")
        return ok

    def _existing(self, parsed: list[Record]) -> dict[tuple[int, int], Known]:
        pairs = {(record.offer_id, record.customer_id) for record in parsed}
        assignments = Assignment.objects.filter(offer_id__in={offer_id for offer_id, _ in pairs}).values_list(
            "offer_id",
            "customer_id",
            "pk",
            "arm",
            "assigned_at",
            "trial__claimed_at",
            "trial__ends_at",
            "trial__status",
            "trial__converted_at",
        )
        existing = {}
        for offer_id, customer_id, pk, *content in where_in(assignments, "customer", {c for _, c in pairs}):
            if (offer_id, customer_id) in pairs:
                existing[(offer_id, customer_id)] = Known(pk, Content(*content))
        return existing

    def check_and_write(self, parsed: list[Record]):
        existing = self._existing(parsed)
        accepted: dict[tuple[int, int], Record] = {}
        for record in parsed:
            key = (record.offer_id, record.customer_id)
            earlier, known = accepted.get(key), existing.get(key)
            if earlier is not None or known is not None:
                other = (earlier or known).content
                self.repeat(
                    record.row,
                    "customer_external_id",
                    same=record.content.same_as(other),
                    line=earlier.row if earlier else self.lines.get(known.pk),
                    in_file=lambda where, record=record: (
                        f"The customer “{record.customer}” is also assigned to {record.slug} on {where}, differently."
                    ),
                    before=f"The customer “{record.customer}” is already assigned to {record.slug}, differently "
                    f"(arm {other.arm}, since {other.assigned_at:%Y-%m-%d %H:%M} UTC). An assignment never changes.",
                )
                continue
            accepted[key] = record
        if accepted:
            self._write(list(accepted.values()))

    def _write(self, written: list[Record]) -> None:
        assignments = [
            Assignment(
                offer_id=record.offer_id,
                customer_id=record.customer_id,
                variant_id=record.variant_id,
                arm=record.content.arm,
                assigned_at=record.content.assigned_at,
                source=self.source,
            )
            for record in written
        ]
        Assignment.objects.bulk_create(assignments, batch_size=500)
        trials = []
        for assignment, record in zip(assignments, written, strict=True):
            self.lines.add(assignment.pk, record.row)
            content = record.content
            if content.claimed_at is not None:
                trials.append(
                    Trial(
                        assignment=assignment,
                        offer_id=record.offer_id,
                        customer_id=record.customer_id,
                        variant_id=record.variant_id,
                        status=content.status,
                        claimed_at=content.claimed_at,
                        ends_at=content.ends_at,
                        converted_at=content.converted_at,
                        source=self.source,
                    )
                )
        trial_services.trials_import(trials=trials)
        self.statistics.wrote(Assignment, len(assignments))
        self.statistics.wrote(Trial, len(trials))
        self.result.created += len(assignments)
        self.result.trials += len(trials)
