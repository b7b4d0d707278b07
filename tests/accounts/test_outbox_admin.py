"""Operators see failing messages with their error and attempts, and resend them; a sent
message cannot be sent again from the admin."""

import pytest
from django.core import mail
from django.test import override_settings
from post_office.models import STATUS, Email

from accounts.emails import MAX_ATTEMPTS, email_queue, outbox_send_due
from accounts.models import OutboxPurpose
from tests.factories import NOW

CHANGELIST = "/admin/post_office/email/"


def _failed_message():
    record = email_queue(
        to="ann@example.com", subject="Your receipt", text="Thank you.", purpose=OutboxPurpose.RECEIPT, at=NOW
    )
    at = NOW
    with override_settings(EMAIL_BACKEND="tests.accounts.mail_backends.RefusingBackend"):
        for _ in range(MAX_ATTEMPTS):
            outbox_send_due(at=at)
            at = Email.objects.get(pk=record.email_id).scheduled_time
    assert Email.objects.get(pk=record.email_id).status == STATUS.failed
    return record


def _sent_message():
    record = email_queue(
        to="bob@example.com", subject="Welcome", text="Hi.", purpose=OutboxPurpose.VERIFICATION, at=NOW
    )
    assert outbox_send_due(at=NOW) == 1
    return record


@pytest.mark.django_db
def test_failed_messages_are_listed_with_their_error_and_attempts(client, operator):
    failed = _failed_message()
    _sent_message()
    client.force_login(operator)

    page = client.get(CHANGELIST, {"status__exact": STATUS.failed}).content.decode()

    assert "ann@example.com" in page
    assert "bob@example.com" not in page
    assert "Connection unexpectedly closed" in page
    assert f'<td class="field-attempts">{MAX_ATTEMPTS}</td>' in page
    assert "receipt" in page
    detail = client.get(f"{CHANGELIST}{failed.email_id}/change/")
    assert detail.status_code == 200
    assert "SMTPServerDisconnected" in detail.content.decode()


@pytest.mark.django_db
def test_the_resend_action_sends_failed_messages_once_and_leaves_sent_ones_alone(client, operator):
    failed = _failed_message()
    sent = _sent_message()
    client.force_login(operator)
    mail.outbox.clear()

    response = client.post(
        CHANGELIST,
        {"action": "resend_failed", "_selected_action": [failed.email_id, sent.email_id]},
        follow=True,
    )

    page = response.content.decode()
    assert "1 of 2 queued again." in page
    assert "Only failed messages are resent" in page
    assert Email.objects.get(pk=failed.email_id).status == STATUS.queued
    assert outbox_send_due(at=NOW.replace(year=NOW.year + 1)) == 1
    assert [m.to for m in mail.outbox] == [["ann@example.com"]]


@pytest.mark.django_db
def test_the_resend_button_refuses_a_sent_message_and_nothing_can_be_edited(client, operator):
    sent = _sent_message()
    client.force_login(operator)
    mail.outbox.clear()

    response = client.get(f"{CHANGELIST}{sent.email_id}/resend/", follow=True)

    assert "Only a failed message can be resent" in response.content.decode()
    assert mail.outbox == []
    assert Email.objects.get(pk=sent.email_id).status == STATUS.sent
    edit = client.post(f"{CHANGELIST}{sent.email_id}/change/", {"status": STATUS.queued})
    assert edit.status_code == 403
    assert Email.objects.get(pk=sent.email_id).status == STATUS.sent
    assert client.post(f"{CHANGELIST}{sent.email_id}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(CHANGELIST, {"action": "requeue", "_selected_action": [sent.email_id]}).status_code in (200, 302)
    assert Email.objects.get(pk=sent.email_id).status == STATUS.sent, "post_office's requeue action is gone"
