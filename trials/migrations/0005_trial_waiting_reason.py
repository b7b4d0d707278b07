from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("trials", "0004_feedback")]

    operations = [
        migrations.AddField(
            model_name="trial",
            name="waiting_reason",
            field=models.CharField(blank=True, max_length=200),
        ),
    ]
