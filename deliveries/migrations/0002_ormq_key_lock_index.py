"""Index the job table the way the ORM broker reads it.

Every poll of every cluster runs `WHERE key = %s AND lock < now()`; django-q2 ships no index for
it, so without this the poll scans the whole table, and retries waiting for their ETA make it big.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("deliveries", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.RunSQL(
            sql="CREATE INDEX IF NOT EXISTS herald_ormq_key_lock_idx ON django_q_ormq (key, lock);",
            reverse_sql="DROP INDEX IF EXISTS herald_ormq_key_lock_idx;",
        ),
    ]
