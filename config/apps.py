from django.apps import AppConfig


class ConfigConfig(AppConfig):
    """Project-wide plumbing: settings, URLs and the API keys every app's endpoints accept."""

    name = "config"
    verbose_name = "API access"
