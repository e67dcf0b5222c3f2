"""WSGI entry point for granian (`granian config.wsgi:application --interface wsgi`), with the
web process's database connection handling (config.webdb) and chunked request bodies given a
length (config.chunked)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django_application = get_wsgi_application()

from config import webdb  # noqa: E402  (after Django is set up)
from config.chunked import with_body_length  # noqa: E402

webdb.install()
_herald_application = with_body_length(django_application)


def application(environ, start_response):
    webdb.track_request_thread()
    return _herald_application(environ, start_response)
