"""Outgoing email: messages are rendered in the request (where the language and the data are)
and sent by a Celery worker after commit, so a slow mail server never slows a page and a rolled
back transaction never sends a message about something that did not happen."""

from django.core.mail import EmailMultiAlternatives
from django.db import transaction


def email_queue(*, to: list[str], subject: str, text: str, html: str | None = None, from_email: str | None = None):
    from accounts.tasks import email_send

    payload = {"to": list(to), "subject": subject, "text": text, "html": html, "from_email": from_email}
    transaction.on_commit(lambda: email_send.delay(**payload))


def email_deliver(*, to: list[str], subject: str, text: str, html: str | None = None, from_email: str | None = None):
    message = EmailMultiAlternatives(subject=subject, body=text, from_email=from_email, to=to)
    if html:
        message.attach_alternative(html, "text/html")
    message.send()
