"""The customer's feedback form and the marketer's answer: validation only."""

from django import forms
from django.utils.translation import gettext_lazy as _

from trials.models import Feedback


class FeedbackForm(forms.Form):
    promise_met = forms.ChoiceField(choices=Feedback.PromiseMet.choices, widget=forms.RadioSelect)
    rating = forms.TypedChoiceField(
        label=_("Your rating, from 1 (poor) to 5 (excellent)"),
        choices=[(n, str(n)) for n in range(1, 6)],
        coerce=int,
        widget=forms.RadioSelect,
    )
    comment = forms.CharField(
        label=_("Anything you want to tell us (optional)"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 4, "maxlength": 2000}),
    )


class FeedbackAnswerForm(forms.Form):
    response = forms.CharField(
        label=_("Your answer to the customer"),
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 4, "maxlength": 4000}),
        help_text=_("Sent by email in the customer's language as you write it; say sorry where we fell short."),
    )
    refund = forms.CharField(
        label=_("Refund (optional)"),
        required=False,
        max_length=20,
        help_text=_("An amount of the trial's charge to give back, like 12.50; at most what is left unrefunded."),
    )
