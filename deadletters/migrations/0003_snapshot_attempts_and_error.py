from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def copy_from_deliveries(apps, schema_editor):
    # Letters written before this migration take their delivery's values: exact for a letter
    # still waiting, the delivery's latest for one already replayed (the best there is).
    DeadLetter = apps.get_model("deadletters", "DeadLetter")
    Delivery = apps.get_model("deliveries", "Delivery")
    delivery = Delivery.objects.filter(pk=OuterRef("delivery_id"))
    DeadLetter.objects.update(
        attempt_count=Subquery(delivery.values("attempt_count")[:1]),
        last_error=Subquery(delivery.values("last_error")[:1]),
    )


class Migration(migrations.Migration):

    dependencies = [
        ("deadletters", "0002_deadletter_resolution_idx"),
        ("deliveries", "0009_worker_heartbeat_stopped_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="deadletter",
            name="attempt_count",
            field=models.PositiveIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name="deadletter",
            name="last_error",
            field=models.TextField(blank=True, db_default="", default=""),
        ),
        migrations.RunPython(copy_from_deliveries, migrations.RunPython.noop, elidable=True),
    ]
