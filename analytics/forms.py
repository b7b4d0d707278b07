"""The dashboards' filters. The form parses and validates the query string; ``selection()``
turns it into the ``analytics.rollups.Slice`` the pages read."""

import re
from urllib.parse import urlencode

from django import forms
from django.utils.translation import gettext_lazy as _

from analytics.rollups import Slice

COUNTRY = re.compile(r"^[A-Za-z]{2}$")
DATE_WIDGET = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class DashboardFilters(forms.Form):
    """Date range of assignment, offer (on the overview only), variant and country. Every field
    is optional: an empty form is every assignment of every offer."""

    assigned_from = forms.DateField(label=_("Assigned from"), required=False, widget=DATE_WIDGET)
    assigned_to = forms.DateField(label=_("Assigned to"), required=False, widget=DATE_WIDGET)
    offer = forms.ChoiceField(label=_("Offer"), required=False)
    variant = forms.ChoiceField(label=_("Variant"), required=False)
    country = forms.CharField(label=_("Country"), required=False, help_text=_("Two letters (ISO 3166-1), e.g. IT"))

    def __init__(self, data=None, *, offers=(), offer=None):
        """``offers``: the overview's choice of offers; ``offer``: the offer whose page this is
        (there is then no offer field, and the variants are that offer's)."""
        super().__init__(data)
        if offer is not None:
            del self.fields["offer"]
            variants = [variant.name for variant in offer.variants.all()]
        else:
            self.fields["offer"].choices = [("", _("Every offer"))] + [(o.slug, o.name) for o in offers]
            variants = sorted({variant.name for o in offers for variant in o.variants.all()})
        self.fields["variant"].choices = [("", _("Every variant"))] + [(name, name) for name in variants]

    def clean_country(self):
        country = self.cleaned_data["country"].strip()
        if country and not COUNTRY.match(country):
            raise forms.ValidationError(_("Enter a country as two letters, such as IT or PL."))
        return country.upper()

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("assigned_from"), cleaned.get("assigned_to")
        if start and end and start > end:
            self.add_error("assigned_to", _("The end of the date range is before its start."))
        return cleaned

    def query(self) -> str:
        """The filters as a query string, from the cleaned values only: the same filters give the
        same text, whatever else the URL carried (the overview keeps its figures under it)."""
        values = {}
        for name, value in self.cleaned_data.items():
            if value not in (None, ""):
                values[name] = value.isoformat() if hasattr(value, "isoformat") else value
        return urlencode(values)

    def selection(self) -> Slice:
        data = self.cleaned_data
        return Slice(
            variant=data.get("variant") or None,
            country=data.get("country") or None,
            assigned_from=data.get("assigned_from"),
            assigned_to=data.get("assigned_to"),
        )
