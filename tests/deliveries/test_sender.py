from __future__ import annotations

from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from deliveries.sender import build_request, send
from subscribers.secrets import generate_secret
from tests.receiver import Reply

NOW = datetime.now(UTC)


def _request(url: str, secrets: list[str]):
    return build_request(
        url=url,
        message_id="0b3c6c52-9d0b-4a57-8ad1-6a5f0f3c2b11",
        event_type="order.created",
        occurred_at=datetime(2026, 11, 24, 12, 0, tzinfo=UTC),
        payload={"order_id": 42, "note": "crème brûlée"},
        secrets=secrets,
        now=NOW,
    )


def _send(request, **overrides):
    options = {"connect_timeout": 2, "total_timeout": 2, "excerpt_bytes": 4096} | overrides
    return send(request, **options)


def test_signature_verifies_with_the_standard_webhooks_library():
    secret = generate_secret()
    request = _request("http://127.0.0.1/hook", [secret])

    verified = Webhook(secret).verify(request.body, request.headers)

    assert verified == {
        "type": "order.created",
        "timestamp": "2026-11-24T12:00:00+00:00",
        "data": {"order_id": 42, "note": "crème brûlée"},
    }
    assert request.headers["webhook-id"] == "0b3c6c52-9d0b-4a57-8ad1-6a5f0f3c2b11"
    assert request.headers["Content-Type"] == "application/json"
    assert "Herald" in request.headers["User-Agent"]


def test_each_secret_signs_so_receivers_on_either_verify():
    old, new = generate_secret(), generate_secret()
    request = _request("http://127.0.0.1/hook", [new, old])

    assert request.headers["webhook-signature"].count("v1,") == 2
    for secret in (old, new):
        Webhook(secret).verify(request.body, request.headers)


def test_success_is_sent_signed_and_reported(receiver):
    secret = generate_secret()

    result = _send(_request(receiver.url(), [secret]))

    assert result.succeeded and result.status_code == 200
    assert result.response_excerpt == '{"ok": true}'
    (got,) = receiver.received()
    assert Webhook(secret).verify(got.body, got.headers)["data"]["order_id"] == 42


def test_server_error_is_reported_with_its_body(receiver):
    receiver.default("/hook", Reply(status=500, body=b"database on fire"))

    result = _send(_request(receiver.url(), [generate_secret()]))

    assert not result.succeeded
    assert result.status_code == 500
    assert result.response_excerpt == "database on fire"


def test_response_excerpt_is_truncated(receiver):
    receiver.default("/hook", Reply(body=b"x" * 10_000))

    result = _send(_request(receiver.url(), [generate_secret()]), excerpt_bytes=100)

    assert result.succeeded
    assert result.response_excerpt == "x" * 100


def test_redirects_are_not_followed(receiver):
    receiver.default("/hook", Reply(status=302, headers=(("Location", receiver.url("/other")),)))

    result = _send(_request(receiver.url(), [generate_secret()]))

    assert result.status_code == 302 and not result.succeeded
    assert receiver.received("/other") == []


def test_slow_receiver_times_out(receiver):
    receiver.default("/hook", Reply(delay=3))

    result = _send(_request(receiver.url(), [generate_secret()]), total_timeout=0.5)

    assert result.status_code is None
    assert result.error.startswith("timeout")
    assert result.duration_ms < 2000


def test_refused_connection_is_an_error_not_an_exception(receiver):
    url = receiver.url()
    receiver.close()

    result = _send(_request(url, [generate_secret()]))

    assert result.status_code is None
    assert result.error.startswith("connection error")
