"""Rate limits for Foretaste's own pages that act for a customer: claiming, cancelling, and the
signed links in emails. Each action has a limit per IP address and, for a logged-in customer,
per account, counted in the shared cache (Redis in production) so every web process sees the
same counts.

The counting is allauth's (``allauth.core.internal.ratelimit``, django-allauth pinned in
requirements.txt): the same cache keys, the same sliding window, and above all the same client
address, which honours ``ALLAUTH_TRUSTED_PROXY_COUNT`` behind a proxy. A second implementation
would be one more place to get the proxy rule wrong. The module is internal to allauth, so
``tests/config/test_ratelimit.py`` pins its behaviour.
"""

from functools import wraps
from http import HTTPStatus

from allauth.core.internal import httpkit, ratelimit
from django.conf import settings
from django.shortcuts import render

# action → allauth's rate syntax: "<count>/<period>/<ip|user>", comma-separated.
DEFAULT_RATES = {
    "claim": "20/10m/ip,10/10m/user",
    "buy": "20/10m/ip,10/10m/user",
    "cancel": "30/10m/ip,20/10m/user",
    "signed_link": "30/10m/ip",
}


def client_ip(request) -> str | None:
    """The client's address as the limits count it: behind ``ALLAUTH_TRUSTED_PROXY_COUNT``
    proxies, the one they put in X-Forwarded-For, not the proxy's own."""
    return httpkit.get_client_ip(request)


def _rates(action: str, *, authenticated: bool) -> str:
    rates = getattr(settings, "FORETASTE_RATE_LIMITS", {}).get(action, DEFAULT_RATES[action])
    if authenticated:
        return rates
    # An anonymous visitor has no account to count against; the IP limit still applies.
    return ",".join(rate for rate in rates.split(",") if not rate.strip().endswith("/user"))


def rate_limited(action: str, *, limit_get: bool = False):
    """Refuse a request with a 429 page once the action's limit is used up. GET requests count
    only with ``limit_get`` (the signed-link pages, where a GET reads a token)."""
    if action not in DEFAULT_RATES:
        raise ValueError(f"No rate limit is defined for {action!r}.")

    def decorator(view):
        @wraps(view)
        def limited(request, *args, **kwargs):
            if getattr(settings, "ACCOUNT_RATE_LIMITS", None) is not False:
                config = {action: _rates(action, authenticated=request.user.is_authenticated)}
                usage = ratelimit.consume(request, app="foretaste", action=action, config=config, limit_get=limit_get)
                if usage is None:
                    return too_many(request)
            return view(request, *args, **kwargs)

        return limited

    return decorator


def too_many(request):
    response = render(request, "429.html", status=HTTPStatus.TOO_MANY_REQUESTS)
    response["Retry-After"] = "600"
    return response
