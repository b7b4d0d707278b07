"""Signed links that act on a trial without logging in: the cancel link in every email.

A link carries the trial's id, signed with SECRET_KEY and a timestamp (Django's
TimestampSigner), so it cannot be forged or pointed at another trial, and it expires. Opening it
only shows a page; the page POSTs, because mail scanners fetch every link in a message, and a
fetch must never cancel anything."""

from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.urls import reverse

from trials.models import Trial

SALT = "foretaste.trial.cancel"
# Longer than any trial (366 days at most) lasts after its first email, so a link in the
# claim's receipt still works on the last day; a link older than that is refused.
VALID_FOR = timedelta(days=400)


class LinkExpired(Exception):
    pass


class LinkInvalid(Exception):
    pass


def cancel_token(trial: Trial) -> str:
    return signing.TimestampSigner(salt=SALT).sign(str(trial.pk))


def cancel_url(trial: Trial) -> str:
    """The absolute link for an email."""
    return settings.SITE_URL.rstrip("/") + reverse("trial_cancel_link", kwargs={"token": cancel_token(trial)})


def trial_from_cancel_token(token: str) -> Trial:
    """The trial a cancel link names. ``LinkExpired`` when it is too old, ``LinkInvalid`` when
    it was not made by us (or was altered), or names a trial that no longer exists."""
    try:
        trial_id = signing.TimestampSigner(salt=SALT).unsign(token, max_age=VALID_FOR)
    except signing.SignatureExpired:
        raise LinkExpired from None
    except signing.BadSignature:
        raise LinkInvalid from None
    try:
        return Trial.objects.select_related("offer", "customer").get(pk=int(trial_id))
    except (Trial.DoesNotExist, ValueError):
        raise LinkInvalid from None
