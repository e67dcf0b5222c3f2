from django.apps import AppConfig


class DeliveriesConfig(AppConfig):
    name = "deliveries"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from deliveries.schedules import install_schedules

        # post_migrate also fires after a test database flush, so the sweeper survives it.
        post_migrate.connect(install_schedules, sender=self)
