"""The moment the terms promised a message for (a reminder's), and its value for the reminders
already queued: the key names the promised minute ("trial-42-reminder-20260608T0900"), and the
moment itself is the trial's end less that whole number of days (offers.terms.reminder_times)."""

from datetime import UTC, datetime, timedelta

from django.db import migrations, models

BATCH = 2000


def promised_at_backfill(apps, schema_editor):
    OutboxMessage = apps.get_model("accounts", "OutboxMessage")
    Trial = apps.get_model("trials", "Trial")
    reminders = OutboxMessage.objects.filter(purpose="reminder", promised_at__isnull=True, key__contains="-reminder-")
    last = 0
    while True:
        rows = list(reminders.filter(pk__gt=last).order_by("pk")[:BATCH])
        if not rows:
            return
        last = rows[-1].pk
        ends = dict(Trial.objects.filter(pk__in=[row.about_id for row in rows]).values_list("pk", "ends_at"))
        for row in rows:
            minute = datetime.strptime(row.key.rsplit("-", 1)[-1], "%Y%m%dT%H%M").replace(tzinfo=UTC)
            if row.about_id in ends:
                days = round((ends[row.about_id] - minute) / timedelta(days=1))
                row.promised_at = ends[row.about_id] - timedelta(days=days)
        OutboxMessage.objects.bulk_update([row for row in rows if row.promised_at], ["promised_at"])


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0008_user_signed_up_from"),
        ("trials", "0006_trial_conversion_charge"),
    ]

    operations = [
        migrations.AddField(
            model_name="outboxmessage",
            name="promised_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="promised for"),
        ),
        migrations.RunPython(promised_at_backfill, migrations.RunPython.noop, elidable=True),
    ]
