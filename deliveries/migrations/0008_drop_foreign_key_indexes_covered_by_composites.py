"""Drop the deliveries' single-column foreign-key indexes: composite indexes lead with the same
columns (delivery_event_subscriber_unique with event_id, delivery_subscriber_idx with
subscriber_id), and every index is written again for each delivery inserted.

Only the indexes go. Django's own AlterField would also drop and re-add both foreign-key
constraints, and re-adding one validates every row of the table under a lock that blocks writes.
"""

import django.db.models.deletion
from django.db import migrations, models

INDEXES = {
    "deliveries_delivery_event_id_ee0aa5a0": "event_id",
    "deliveries_delivery_subscriber_id_3246b22e": "subscriber_id",
}


class Migration(migrations.Migration):
    dependencies = [
        ("deliveries", "0007_delivery_attempts_made"),
        ("events", "0004_reserve_herald_source_slug"),
        ("subscribers", "0003_secret_rotation"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="delivery",
                    name="event",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to="events.event",
                    ),
                ),
                migrations.AlterField(
                    model_name="delivery",
                    name="subscriber",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to="subscribers.subscriber",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    sql=f'DROP INDEX IF EXISTS "{name}"',
                    reverse_sql=f'CREATE INDEX "{name}" ON "deliveries_delivery" ("{column}")',
                )
                for name, column in INDEXES.items()
            ],
        ),
    ]
