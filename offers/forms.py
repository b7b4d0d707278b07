"""Console forms. They parse and validate; the services write. Validation itself lives in
offers/validation.py, shared with the API, so both give the same answers in the same words."""

from decimal import Decimal, InvalidOperation

from django import forms
from django.forms import formset_factory
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from analytics.planning import MAX_WEEKLY_ELIGIBLE, planning_table
from offers import validation
from offers.models import Offer, Product
from offers.money import MoneyError, money_format, to_major, to_minor
from offers.translation import LIMITS, MAIN_LANGUAGE, word_columns, words_problems
from offers.validation import VariantSpec, offer_problems, offer_values_complete, product_problems

DATETIME_WIDGET = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


def _apply(
    form: forms.Form,
    by_field: dict[str, list[str]],
    *,
    unknown: set[str] = frozenset(),
    variant_errors: list[str] | None = None,
) -> None:
    """Put the shared rules' messages on their fields, except on fields in ``unknown``: those
    already say why they could not be read, or rest on a field that could not."""
    for name, messages in by_field.items():
        if name in unknown:
            continue
        for message in messages:
            if name == "variants" and variant_errors is not None:
                variant_errors.append(message)
            else:
                form.add_error(name if name in form.fields else None, message)


def _unknown(form: forms.Form, depends: dict[str, set[str]], *, also: set[str] = frozenset()) -> set[str]:
    """The fields whose rule messages would be guesses this round: those that did not parse, and
    those whose rules read a field that did not parse (a kind that did not parse says nothing
    about whether a sample may be physical). They are checked once the others are fixed."""
    broken = set(form.errors) | set(also)
    return broken | {name for name, needs in depends.items() if needs & broken}


# Which other fields the shared rules read when they judge a field (offers/validation.py).
PRODUCT_DEPENDS = {"price": {"currency"}}
OFFER_DEPENDS = {
    "currency": {"product"},
    "physical": {"kind"},
    "trial_price": {"kind", "product", "currency"},
    "sample_cost": {"currency"},
    "ends_at": {"starts_at"},
    "recent_purchase_days": {"eligibility"},
    "reminder_days": {"kind", "trial_days", "variants"},
    "variants": {"kind", "trial_days", "trial_price", "product", "currency"},
}


class ConsoleForm(forms.Form):
    """Django links a field to its error text with aria-describedby and marks it aria-invalid;
    this adds what the error summary at the top of the page needs."""

    def error_summary(self) -> list[dict]:
        """Each field at fault, in page order, with the id of the element to jump to."""
        items = []
        for bound in self:
            if bound.errors:
                target = f"{bound.auto_id}_locked" if getattr(bound.field, "locked", False) else bound.auto_id
                items.append({"target": target, "label": bound.label, "errors": list(bound.errors)})
        return items


class TranslatedWords:
    """The per-language inputs for the model's own words (the console's "Translations"): one
    optional field per language and word, e.g. ``name_it``, judged by the main text's limits."""

    words_model: type

    def _add_word_fields(self, obj) -> None:
        for column in word_columns(self.words_model):
            field, code = column.rsplit("_", 1)
            limit = LIMITS[field][0]
            widget = forms.Textarea(attrs={"rows": 2}) if field == "description" else forms.TextInput()
            widget.attrs.update({"maxlength": limit, "lang": code})
            self.fields[column] = forms.CharField(
                label=f"{self.fields[field].label} ({translation.get_language_info(code)['name_local']})",
                required=False,
                widget=widget,
            )
            if obj is not None:
                self.initial.setdefault(column, getattr(obj, column) or "")

    def words(self) -> dict[str, str]:
        data = getattr(self, "cleaned_data", {})
        return {column: data.get(column) or "" for column in word_columns(self.words_model)}

    def _check_words(self) -> None:
        for column, messages in words_problems(self.words_model, self.words()).items():
            for message in messages:
                self.add_error(column, message)

    def main_fields(self):
        columns = set(word_columns(self.words_model))
        return [bound for bound in self if bound.name not in columns]

    def word_fields(self):
        return [self[column] for column in word_columns(self.words_model)]


def _text(label, maximum: int, **kwargs) -> forms.CharField:
    """A text field whose length the shared rules judge, so the console and the API refuse it in
    the same words; the browser's maxlength only keeps a person from typing past it."""
    return forms.CharField(label=label, widget=forms.TextInput(attrs={"maxlength": maximum}), **kwargs)


class ProductForm(TranslatedWords, ConsoleForm):
    words_model = Product

    sku = _text(_("SKU"), validation.MAX_SKU, help_text=_("Lower-case letters, digits and hyphens."))
    name = _text(_("Name"), validation.MAX_NAME)
    description = forms.CharField(
        label=_("Description"),
        widget=forms.Textarea(attrs={"rows": 3, "maxlength": validation.MAX_DESCRIPTION}),
        required=False,
    )
    image = forms.ImageField(label=_("Image"), required=False)
    price = forms.DecimalField(label=_("Paid price"), max_digits=12, decimal_places=3, min_value=Decimal("0.001"))
    currency = forms.CharField(label=_("Currency"), max_length=3, initial="EUR", help_text=_("ISO 4217, e.g. EUR."))
    interval = forms.ChoiceField(label=_("Billing"), choices=Product.Interval.choices, required=False)

    def __init__(self, *args, product: Product | None = None, **kwargs):
        self.product = product
        if product is not None and "initial" not in kwargs:
            with translation.override(MAIN_LANGUAGE):  # the main text, whatever the console's language
                kwargs["initial"] = self._initial(product)
        super().__init__(*args, **kwargs)
        self._add_word_fields(product)

    @staticmethod
    def _initial(product: Product) -> dict:
        return {
            "sku": product.sku,
            "name": product.name,
            "description": product.description,
            "price": to_major(product.price_amount, product.currency),
            "currency": product.currency,
            "interval": product.interval,
        }

    def clean_currency(self):
        return self.cleaned_data["currency"].strip().upper()

    def clean(self):
        data = super().clean()
        currency = data.get("currency", "")
        price_amount = None
        if data.get("price") is not None and "currency" not in self.errors:
            try:
                price_amount = to_minor(data["price"], currency)
            except MoneyError as exc:
                self.add_error("currency" if "currency code" in str(exc) else "price", str(exc))
        data["price_amount"] = price_amount
        # Every field's problem in one round: the shared rules judge what parsed.
        problems = product_problems(
            sku=data.get("sku", ""),
            name=data.get("name", ""),
            price_amount=price_amount,
            currency=currency,
            interval=data.get("interval", ""),
            description=data.get("description", ""),
            existing=self.product,
        )
        _apply(self, problems.by_field, unknown=_unknown(self, PRODUCT_DEPENDS))
        self._check_words()
        return data


class VariantForm(forms.Form):
    name = _text(_("Name"), validation.MAX_VARIANT_NAME, required=False)
    weight = forms.IntegerField(label=_("Weight"), min_value=0, required=False)
    kind = forms.ChoiceField(
        label=_("Kind"), choices=[("", _("same as the offer")), *Offer.Kind.choices], required=False
    )
    trial_days = forms.IntegerField(label=_("Days"), min_value=1, required=False)
    trial_price = forms.DecimalField(
        label=_("Trial price"), min_value=0, max_digits=12, decimal_places=3, required=False
    )


# The shared rule (offers.validation.MAX_VARIANTS) refuses too many variants, in the API's words;
# the formset reads at most ten times that many rows (Django refuses more in its own words), so a
# forged post cannot make it build thousands of forms.
_VARIANT_ROWS = {"max_num": validation.MAX_VARIANTS, "absolute_max": validation.MAX_VARIANTS * 10}
VariantFormSet = formset_factory(VariantForm, extra=2, **_VARIANT_ROWS)
# A launched offer's variants are locked: no empty rows to add one.
LockedVariantFormSet = formset_factory(VariantForm, extra=0, **_VARIANT_ROWS)


def lock_variant_forms(variant_forms) -> None:
    """Show a launched offer's variants as locked values, not boxes. Hidden inputs still carry
    them, so a changed value reaches validation and is refused with the reason."""
    for variant_form in variant_forms:
        for name, field in variant_form.fields.items():
            field.widget = forms.HiddenInput()
            field.locked = True
            field.locked_text = _variant_value_text(variant_form, name)


def _variant_value_text(variant_form, name: str) -> str:
    value = variant_form[name].value()
    if name == "kind":
        return str(dict(Offer.Kind.choices).get(value, _("same as the offer")))
    return "—" if value in (None, "") else str(value)


class OfferForm(TranslatedWords, ConsoleForm):
    words_model = Offer

    # A CharField: the shared rule explains a bad slug in the API's words.
    slug = _text(_("Slug"), validation.MAX_SLUG, help_text=_("The offer's address: /o/<slug>/."))
    name = _text(_("Name"), validation.MAX_NAME)
    promise = _text(
        _("Promised experience"),
        validation.MAX_PROMISE,
        required=False,
        help_text=_("One line: what the customer should get from the sample. The feedback survey asks about it."),
    )
    kind = forms.ChoiceField(label=_("Kind"), choices=Offer.Kind.choices)
    physical = forms.BooleanField(label=_("Physical sample (asks for a shipping address)"), required=False)
    product = forms.ModelChoiceField(
        label=_("Paid product"),
        queryset=Product.objects.order_by("name"),
        error_messages={"invalid_choice": _("That product does not exist; choose one from the list.")},
    )
    trial_days = forms.IntegerField(label=_("Trial length (days)"))
    trial_price = forms.DecimalField(label=_("Trial price"), max_digits=12, decimal_places=3, initial=0)
    currency = forms.CharField(label=_("Currency"), max_length=3, initial="EUR")
    eligibility = forms.ChoiceField(label=_("Who may claim"), choices=Offer.Eligibility.choices)
    recent_purchase_days = forms.IntegerField(label=_("N (days without a purchase)"), required=False)
    allowed_countries = forms.CharField(
        label=_("Allowed countries"),
        required=False,
        help_text=_("Comma-separated codes like DE, FR. Empty: everywhere."),
    )
    inventory = forms.IntegerField(label=_("Inventory (total claims)"), required=False, help_text=_("Empty: no limit."))
    daily_limit = forms.IntegerField(label=_("Claims per day"), required=False, help_text=_("Empty: no limit."))
    starts_at = forms.DateTimeField(label=_("Starts (UTC)"), widget=DATETIME_WIDGET)
    ends_at = forms.DateTimeField(label=_("Ends (UTC)"), widget=DATETIME_WIDGET, required=False)
    grace_days = forms.IntegerField(label=_("Conversion grace (days)"), initial=7)
    sample_cost = forms.DecimalField(
        label=_("Cost of one sample"),
        max_digits=12,
        decimal_places=3,
        initial=0,
        help_text=_("What one claim costs you; used for net value."),
    )
    reminder_days = forms.CharField(
        label=_("Reminders (days before the end)"),
        required=False,
        help_text=_("Comma-separated, e.g. 7, 3. Empty: 7 and 3 where the trial is long enough."),
    )
    feedback_survey = forms.BooleanField(label=_("Ask for feedback after the trial"), required=False, initial=True)
    # No min/max on numbers here: offers/validation.py says what is wrong in the same words as the API.
    holdout_percent = forms.IntegerField(
        label=_("Holdout (%)"),
        initial=10,
        help_text=_("Customers who see no offer, so that its effect can be measured."),
    )

    # The order of the page (templates/console/offer_form.html), so the error summary reads
    # top to bottom.
    field_order = [
        "name", "slug", "promise", "kind", "physical", "product", "trial_days", "trial_price", "currency",
        "reminder_days", "grace_days", "sample_cost", "feedback_survey", "eligibility", "recent_purchase_days",
        "allowed_countries", "inventory", "daily_limit", "starts_at", "ends_at", "holdout_percent",
    ]  # fmt: skip

    def __init__(self, *args, offer: Offer | None = None, **kwargs):
        self.offer = offer
        if offer is not None and "initial" not in kwargs:
            kwargs["initial"] = offer_initial(offer)
        super().__init__(*args, **kwargs)
        self._add_word_fields(offer)
        self.variant_specs: list[VariantSpec] = []
        self.variant_errors: list[str] = []
        self.values: dict = {}
        self.complete = False
        if offer is not None and offer.is_locked:
            for name in Offer.LOCKED_FIELDS_AT_LAUNCH:
                if name in self.fields:
                    self._lock(name)

    def _lock(self, name: str) -> None:
        """Shown as a value marked "locked since launch", not as a box. A hidden input, not a
        disabled field, carries the value: a changed one still reaches validation and is refused
        with the reason, rather than being silently ignored."""
        field = self.fields[name]
        field.widget = forms.HiddenInput()
        field.locked = True
        field.locked_text = locked_text(self.offer, name)

    def clean_allowed_countries(self):
        return [c.strip().upper() for c in self.cleaned_data["allowed_countries"].split(",") if c.strip()]

    def clean_reminder_days(self):
        raw = self.cleaned_data["reminder_days"].strip()
        if not raw:
            return None
        try:
            return [int(part) for part in raw.replace(";", ",").split(",") if part.strip()]
        except ValueError:
            raise forms.ValidationError(_("Write whole numbers of days separated by commas, like 7, 3.")) from None

    def clean_currency(self):
        return self.cleaned_data["currency"].strip().upper()

    def _minor(self, form: forms.Form, name: str, value, currency: str) -> int | None:
        if value is None:
            return None
        try:
            return to_minor(value, currency)
        except MoneyError as exc:
            form.add_error(name, str(exc))
            return None

    def validate_with(self, variant_forms) -> None:
        """Parse everything, gather the variants, and run the shared rules on whatever parsed,
        so that every field's problem shows in one round. ``complete`` says whether it may be saved."""
        self.is_valid()
        variant_forms.is_valid()
        data = self.cleaned_data
        currency = data.get("currency", "")
        currency_known = "currency" not in self.errors
        columns = set(word_columns(Offer))  # saved apart, by words_set
        values = {k: v for k, v in data.items() if k not in ("trial_price", "sample_cost") and k not in columns}
        if currency_known:
            values["trial_price"] = self._minor(self, "trial_price", data.get("trial_price"), currency)
            values["sample_cost"] = self._minor(self, "sample_cost", data.get("sample_cost"), currency)
        specs = []
        for variant in variant_forms:
            row = getattr(variant, "cleaned_data", None) or {}
            if not row.get("name"):
                continue
            price = row.get("trial_price")
            if price is not None and currency_known:
                price = self._minor(variant, "trial_price", price, currency)
            specs.append(
                VariantSpec(
                    name=row["name"].strip(),
                    weight=row["weight"] if row.get("weight") is not None else 1,
                    kind=row.get("kind") or "",
                    trial_days=row.get("trial_days"),
                    trial_price=price,
                )
            )
        self.variant_specs = specs
        variants_broken = bool(variant_forms.non_form_errors()) or any(v.errors for v in variant_forms)
        unknown = _unknown(self, OFFER_DEPENDS, also={"variants"} if variants_broken else set())
        if not currency_known:
            unknown |= {"trial_price", "sample_cost", "variants"}
        problems = offer_problems(values=offer_values_complete(values), variants=specs, existing=self.offer)
        _apply(self, problems.by_field, unknown=unknown, variant_errors=self.variant_errors)
        self._check_words()
        self.complete = not self.errors and not self.variant_errors and not variants_broken
        if self.complete:
            self.values = values

    def apply_problems(self, by_field: dict[str, list[str]]) -> None:
        _apply(self, by_field, variant_errors=self.variant_errors)
        self.complete = False


def locked_text(offer: Offer, name: str) -> str:
    """A locked field's value as the console shows it."""
    value = getattr(offer, name)
    if name == "kind":
        return offer.get_kind_display()
    if name == "product":
        return str(value)
    if name == "trial_days":
        return ngettext("%(days)d day", "%(days)d days", value) % {"days": value}
    if name == "trial_price":
        return money_format(value, offer.currency, translation.get_language() or "en")
    if name == "holdout_percent":
        return f"{value}%"
    return str(value)


def offer_initial(offer: Offer) -> dict:
    with translation.override(MAIN_LANGUAGE):  # the main text, whatever the console's language
        return _offer_initial(offer)


def _offer_initial(offer: Offer) -> dict:
    return {
        "slug": offer.slug,
        "name": offer.name,
        "promise": offer.promise,
        "kind": offer.kind,
        "physical": offer.physical,
        "product": offer.product_id,
        "trial_days": offer.trial_days,
        "trial_price": to_major(offer.trial_price, offer.currency),
        "currency": offer.currency,
        "eligibility": offer.eligibility,
        "recent_purchase_days": offer.recent_purchase_days,
        "allowed_countries": ", ".join(offer.allowed_countries),
        "inventory": offer.inventory,
        "daily_limit": offer.daily_limit,
        "starts_at": offer.starts_at,
        "ends_at": offer.ends_at,
        "grace_days": offer.grace_days,
        "sample_cost": to_major(offer.sample_cost, offer.currency),
        "reminder_days": ", ".join(str(d) for d in offer.reminder_days),
        "feedback_survey": offer.feedback_survey,
        "holdout_percent": offer.holdout_percent,
    }


def variant_initial(offer: Offer) -> list[dict]:
    return [
        {
            "name": v.name,
            "weight": v.weight,
            "kind": v.kind,
            "trial_days": v.trial_days,
            "trial_price": to_major(v.trial_price, offer.currency) if v.trial_price is not None else None,
        }
        for v in offer.variants.all()
    ]


class PlanningForm(forms.Form):
    """The planning inputs: what the offer form's calculator and /console/planning.json accept.

    Bounded so that the arithmetic stays in range (a 310-digit number of customers would
    overflow a float), and every refusal says what is allowed. An absent value takes its default;
    an empty one is refused, so a cleared box says why no figures show.
    """

    DEFAULTS = {"weekly": "1000", "baseline": "15", "holdout": "10"}
    # Plain fields: _bounded reads the text and gives the one message for anything refused.
    weekly = forms.Field(label=_("Eligible customers per week"), required=False)
    baseline = forms.Field(label=_("Baseline repeat rate (%)"), required=False)
    holdout = forms.Field(label=_("Holdout (%)"), required=False)

    def __init__(self, data=None, **kwargs):
        data = {**self.DEFAULTS, **{k: v for k, v in (data or {}).items() if k in self.DEFAULTS}}
        super().__init__(data, **kwargs)

    def clean_weekly(self):
        return _bounded(
            self.cleaned_data["weekly"],
            low=1,
            high=MAX_WEEKLY_ELIGIBLE,
            whole=True,
            message=_("Give the eligible customers per week as a whole number from 1 to 10,000,000."),
        )

    def clean_baseline(self):
        return _bounded(
            self.cleaned_data["baseline"],
            low=Decimal("0.1"),
            high=Decimal("99.9"),
            whole=False,
            message=_("Give the baseline repeat rate as a percentage from 0.1 to 99.9, like 15 or 12.5."),
        )

    def clean_holdout(self):
        return _bounded(
            self.cleaned_data["holdout"],
            low=0,
            high=99,
            whole=True,
            message=_("Give the holdout as a whole percentage from 0 to 99."),
        )

    def table(self):
        """The planning rows, or None when an input was refused (see ``errors``)."""
        if not self.is_valid():
            return None
        data = self.cleaned_data
        return planning_table(
            weekly_eligible=data["weekly"], baseline=float(data["baseline"]) / 100, holdout_percent=data["holdout"]
        )


def _bounded(raw: str, *, low, high, whole: bool, message) -> int | Decimal:
    text = str(raw or "").strip()
    # Checked before parsing: Decimal would happily read a number with thousands of digits.
    if not text or len(text) > 20:
        raise forms.ValidationError(message)
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise forms.ValidationError(message) from None
    if not number.is_finite() or not low <= number <= high or (whole and number != number.to_integral_value()):
        raise forms.ValidationError(message)
    return int(number) if whole else number
