from django.db import migrations, models

# Every scope that exists when this migration runs: keys issued before scopes existed could do
# everything, and they keep doing so until an operator narrows them.
SCOPES_AT_INTRODUCTION = [
    "events:publish",
    "read",
    "subscribers:manage",
    "sources:manage",
    "deadletters:manage",
    "metrics",
]


def grant_existing_keys_every_scope(apps, schema_editor):
    ApiKey = apps.get_model("config", "ApiKey")
    ApiKey.objects.update(scopes=SCOPES_AT_INTRODUCTION)


class Migration(migrations.Migration):

    dependencies = [
        ("config", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="scopes",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="What this key may do; see the README's API section.",
            ),
        ),
        migrations.RunPython(grant_existing_keys_every_scope, migrations.RunPython.noop),
    ]
