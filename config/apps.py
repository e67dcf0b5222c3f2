from django.apps import AppConfig


class ConfigConfig(AppConfig):
    """Project-wide plumbing: settings, URLs and the API keys every app's endpoints accept."""

    name = "config"
    verbose_name = "API access"

    def ready(self) -> None:
        # drf-spectacular finds schema extensions by their being imported.
        from config.api import schema  # noqa: F401
