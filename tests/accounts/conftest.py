import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """allauth counts signups, logins and confirmation emails in the cache (per address and per
    IP); each test starts with none counted, so one test's requests never limit another's."""
    cache.clear()
    yield
    cache.clear()
