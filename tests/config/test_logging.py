"""Structured logs: JSON lines carrying the ids of the work, plain lines people can read."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.logging import JsonFormatter, PlainFormatter, logging_config
from deliveries import policy
from deliveries.dispatcher import Dispatcher
from events.services import event_create
from tests.logs import captured
from tests.receiver import Reply

ROOT = Path(__file__).resolve().parents[2]


def _record(message: str = "delivery attempt", **extra) -> logging.LogRecord:
    record = logging.LogRecord(
        "deliveries.dispatcher", logging.INFO, __file__, 1, message, (), None
    )
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_formatter_writes_one_object_per_line_with_the_extra_fields():
    line = JsonFormatter().format(
        _record(event_id="e1", delivery_id="d1", attempt=2, status_code=500, note="two\nlines")
    )

    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "delivery attempt"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "deliveries.dispatcher"
    assert entry["time"].endswith("+00:00")
    assert (entry["event_id"], entry["delivery_id"], entry["attempt"]) == ("e1", "d1", 2)
    assert entry["status_code"] == 500
    assert entry["note"] == "two\nlines"


def test_json_formatter_keeps_a_traceback_on_the_same_line():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())

    line = JsonFormatter().format(record)

    assert "\n" not in line
    assert "RuntimeError: boom" in json.loads(line)["exc_info"]


def test_json_formatter_survives_fields_that_are_not_json():
    line = JsonFormatter().format(_record(request=object(), ids={1, 2}))

    entry = json.loads(line)
    assert entry["request"].startswith("<object object")


def test_plain_formatter_appends_the_fields_as_readable_pairs():
    line = PlainFormatter().format(
        _record(delivery_id="d1", attempt=1, reason="HTTP 500: boom", request=object())
    )

    assert line.endswith('delivery attempt delivery_id=d1 attempt=1 reason="HTTP 500: boom"')
    assert "INFO deliveries.dispatcher" in line
    assert "object" not in line


def test_logging_config_refuses_an_unknown_format():
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logging_config(log_format="xml", level="INFO", queue_level="WARNING")


@pytest.mark.django_db
def test_every_attempt_is_logged_with_the_ids_that_follow_an_event(make_subscriber, receiver):
    receiver.then("/hook", Reply(status=503))
    subscriber = make_subscriber(endpoint_url=receiver.url())
    event = event_create(event_type="order.created", payload={"n": 1}).event

    with captured("deliveries.dispatcher") as logs:
        Dispatcher(concurrency=2, poll=0.1, send_options=policy.send_options()).run_until_idle(
            timeout=10
        )

    (attempt,) = logs.named("delivery attempt")
    entry = json.loads(JsonFormatter().format(attempt))
    assert entry["event_id"] == str(event.id)
    assert entry["subscriber_id"] == str(subscriber.id)
    assert entry["delivery_id"] == str(event.deliveries.get().id)
    assert entry["attempt"] == 1
    assert entry["status"] == "retrying"
    assert entry["status_code"] == 503
    assert isinstance(entry["duration_ms"], int)


def _log_line(env: dict[str, str]) -> str:
    script = (
        "import django, logging; django.setup(); "
        "logging.getLogger('herald.test').warning('hello', extra={'event_id': 'e-1'})"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stderr.strip().splitlines()[-1]


def test_production_logs_are_json_and_debug_logs_are_plain_by_default():
    production = _log_line({"DEBUG": "false", "LOG_FORMAT": ""})
    development = _log_line({"DEBUG": "true", "LOG_FORMAT": ""})
    forced = _log_line({"DEBUG": "true", "LOG_FORMAT": "json"})

    assert json.loads(production)["event_id"] == "e-1"
    assert development.endswith("WARNING herald.test hello event_id=e-1")
    assert json.loads(forced)["message"] == "hello"
