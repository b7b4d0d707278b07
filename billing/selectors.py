"""Reads of the billing app for the customer's own pages. Every read is scoped to the customer:
another customer's checkout or subscription is a 404, never a 403 that would say it exists."""

from dataclasses import dataclass

from django.http import Http404
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from billing.models import Checkout, Subscription
from offers.terms import long_date

# The customer's words for a subscription's state (Stripe's are the operators').
SUBSCRIPTION_WORDS = {
    # With a context: the word agrees with "subscription", which is not the same gender as "trial"
    # in Italian, Russian, Polish and French.
    "active": pgettext_lazy("subscription status", "Active"),
    "trialing": pgettext_lazy("subscription status", "Active"),
    "past_due": _("Payment overdue"),
    "incomplete": _("Waiting for the first payment"),
    "unpaid": _("Unpaid"),
    "canceled": pgettext_lazy("subscription status", "Ended"),
    "incomplete_expired": pgettext_lazy("subscription status", "Ended"),
}
CANCELLABLE = ("active", "trialing", "past_due")


def checkout_get_for_customer(*, checkout_id, customer, slug: str) -> Checkout:
    """The customer's own checkout of the offer at ``slug``; ``Http404`` for anything else."""
    try:
        return Checkout.objects.select_related("product", "offer", "customer").get(
            pk=int(checkout_id), customer=customer, offer__slug=slug
        )
    except (Checkout.DoesNotExist, TypeError, ValueError):
        raise Http404(_("No such payment.")) from None


def subscription_get_for_customer(*, subscription_id, customer) -> Subscription:
    try:
        return Subscription.objects.select_related("product", "customer").get(
            pk=int(subscription_id), customer=customer
        )
    except (Subscription.DoesNotExist, TypeError, ValueError):
        raise Http404(_("No such subscription.")) from None


@dataclass(frozen=True)
class SubscriptionLine:
    subscription: Subscription
    product_name: str
    status: str
    ends_on: str  # the day a cancelled subscription ends; empty while it renews
    can_cancel: bool


def me_subscriptions(*, customer, language: str) -> list[SubscriptionLine]:
    rows = Subscription.objects.filter(customer=customer).select_related("product").order_by("-stripe_updated", "-pk")
    return [
        SubscriptionLine(
            subscription=row,
            product_name=row.product.name if row.product else row.stripe_id,
            status=str(SUBSCRIPTION_WORDS.get(row.status, row.status)),
            ends_on=long_date(row.ends_at, language) if row.ends_at and row.status != "canceled" else "",
            can_cancel=row.status in CANCELLABLE and row.cancel_requested_at is None,
        )
        for row in rows
    ]
