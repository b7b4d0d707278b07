"""The customer's own page, ``/me/``: their trials (status, days left, the next charge), their
receipts and purchases, every email we sent them, and everything we keep about them as JSON."""

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render
from django.utils import timezone, translation

from trials import selectors


@login_required
def me(request):
    language = translation.get_language()
    customer = request.user
    return render(
        request,
        "trials/me.html",
        {
            "trials": selectors.me_trials(customer=customer, language=language, at=timezone.now()),
            "purchases": selectors.me_purchases(customer=customer, language=language),
            "emails": selectors.me_emails(customer=customer),
        },
    )


@login_required
def me_data(request):
    response = JsonResponse(selectors.me_data(customer=request.user), json_dumps_params={"indent": 2})
    response["Content-Disposition"] = 'attachment; filename="foretaste-my-data.json"'
    response["Cache-Control"] = "private, no-store"
    return response
