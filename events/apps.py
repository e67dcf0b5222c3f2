from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "events"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from events import operational
        from events.schedules import install_schedules

        operational.connect()
        # Installed after every migrate (and test database flush), like the sweeper's.
        post_migrate.connect(install_schedules, sender=self)
