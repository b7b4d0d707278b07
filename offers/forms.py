"""Console forms. They parse and validate; the services write. Validation itself lives in
offers/validation.py, shared with the API, so both give the same answers in the same words."""

from decimal import Decimal

from django import forms
from django.forms import formset_factory
from django.utils.translation import gettext_lazy as _

from offers.models import Offer, Product
from offers.money import MoneyError, to_major, to_minor
from offers.validation import VariantSpec, offer_problems, offer_values_complete, product_problems

DATETIME_WIDGET = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


def _apply(form: forms.Form, by_field: dict[str, list[str]], *, variant_errors: list[str] | None = None) -> None:
    for name, messages in by_field.items():
        for message in messages:
            if name == "variants" and variant_errors is not None:
                variant_errors.append(message)
            else:
                form.add_error(name if name in form.fields else None, message)


class ProductForm(forms.Form):
    sku = forms.CharField(label=_("SKU"), max_length=64, help_text=_("Lower-case letters, digits and hyphens."))
    name = forms.CharField(label=_("Name"), max_length=200)
    description = forms.CharField(label=_("Description"), widget=forms.Textarea(attrs={"rows": 3}), required=False)
    image = forms.ImageField(label=_("Image"), required=False)
    price = forms.DecimalField(label=_("Paid price"), max_digits=12, decimal_places=3, min_value=Decimal("0.001"))
    currency = forms.CharField(label=_("Currency"), max_length=3, initial="EUR", help_text=_("ISO 4217, e.g. EUR."))
    interval = forms.ChoiceField(label=_("Billing"), choices=Product.Interval.choices, required=False)

    def __init__(self, *args, product: Product | None = None, **kwargs):
        self.product = product
        if product is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "sku": product.sku,
                "name": product.name,
                "description": product.description,
                "price": to_major(product.price_amount, product.currency),
                "currency": product.currency,
                "interval": product.interval,
            }
        super().__init__(*args, **kwargs)

    def clean_currency(self):
        return self.cleaned_data["currency"].strip().upper()

    def clean(self):
        data = super().clean()
        currency = data.get("currency", "")
        price_amount = None
        if data.get("price") is not None:
            try:
                price_amount = to_minor(data["price"], currency)
            except MoneyError as exc:
                self.add_error("currency" if "currency code" in str(exc) else "price", str(exc))
        data["price_amount"] = price_amount
        if self.errors:
            return data
        problems = product_problems(
            sku=data.get("sku", ""),
            name=data.get("name", ""),
            price_amount=price_amount,
            currency=currency,
            interval=data.get("interval", ""),
            existing=self.product,
        )
        _apply(self, problems.by_field)
        return data


class VariantForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=40, required=False)
    weight = forms.IntegerField(label=_("Weight"), min_value=0, required=False)
    kind = forms.ChoiceField(
        label=_("Kind"), choices=[("", _("same as the offer")), *Offer.Kind.choices], required=False
    )
    trial_days = forms.IntegerField(label=_("Days"), min_value=1, required=False)
    trial_price = forms.DecimalField(
        label=_("Trial price"), min_value=0, max_digits=12, decimal_places=3, required=False
    )


VariantFormSet = formset_factory(VariantForm, extra=2, max_num=10, validate_max=True)


class OfferForm(forms.Form):
    slug = forms.SlugField(label=_("Slug"), max_length=80, help_text=_("The offer's address: /o/<slug>/."))
    name = forms.CharField(label=_("Name"), max_length=200)
    promise = forms.CharField(
        label=_("Promised experience"),
        max_length=200,
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

    def __init__(self, *args, offer: Offer | None = None, **kwargs):
        self.offer = offer
        if offer is not None and "initial" not in kwargs:
            kwargs["initial"] = offer_initial(offer)
        super().__init__(*args, **kwargs)
        self.variant_specs: list[VariantSpec] = []
        self.variant_errors: list[str] = []
        self.values: dict = {}
        if offer is not None and offer.is_locked:
            # Read-only, not disabled: a changed value still reaches validation and is refused
            # with the reason, rather than being silently ignored.
            self.fields["holdout_percent"].widget.attrs["readonly"] = True
            self.fields["holdout_percent"].help_text = _(
                "Locked since launch: changing the holdout would start a new experiment. Duplicate the offer instead."
            )

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

    def _minor(self, name: str, value, currency: str) -> int | None:
        if value is None:
            return None
        try:
            return to_minor(value, currency)
        except MoneyError as exc:
            self.add_error(name, str(exc))
            return None

    def validate_with(self, variant_forms) -> None:
        """Parse money, gather the variants, and run the shared validation."""
        data = self.cleaned_data
        currency = data.get("currency", "")
        values = {k: v for k, v in data.items() if k not in ("trial_price", "sample_cost")}
        values["trial_price"] = self._minor("trial_price", data.get("trial_price"), currency)
        values["sample_cost"] = self._minor("sample_cost", data.get("sample_cost"), currency)
        specs = []
        for variant in variant_forms:
            row = variant.cleaned_data
            if not row or not row.get("name"):
                continue
            price = row.get("trial_price")
            try:
                price = to_minor(price, currency) if price is not None else None
            except MoneyError as exc:
                self.variant_errors.append(f"{row['name']}: {exc}")
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
        if self.errors or self.variant_errors:
            return
        problems = offer_problems(values=offer_values_complete(values), variants=specs, existing=self.offer)
        self.apply_problems(problems.by_field)
        self.values = values

    def apply_problems(self, by_field: dict[str, list[str]]) -> None:
        _apply(self, by_field, variant_errors=self.variant_errors)


def offer_initial(offer: Offer) -> dict:
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
