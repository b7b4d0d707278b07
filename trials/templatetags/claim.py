"""The landing page's claim section for a logged-in customer (``{% claim_section %}``): its own
tag because ``offers/views.py`` renders the landing page and the claim form is the claim's."""

from django import template

from trials.claim_views import claim_state

register = template.Library()


@register.inclusion_tag("trials/claim_form.html", takes_context=True)
def claim_section(context):
    request = context["request"]
    return {**claim_state(request=request, offer=context["offer"]), "offer": context["offer"], "request": request}
