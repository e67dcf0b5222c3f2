from django.apps import AppConfig


class DeliveriesConfig(AppConfig):
    name = "deliveries"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate
        from django_q.signals import post_spawn

        from deliveries.schedules import install_schedules
        from deliveries.worker import start_dispatcher

        # post_migrate also fires after a test database flush, so the sweeper survives it.
        post_migrate.connect(install_schedules, sender=self)
        post_spawn.connect(start_dispatcher, dispatch_uid="herald-dispatcher")
