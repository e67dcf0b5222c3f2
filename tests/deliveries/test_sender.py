from __future__ import annotations

from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from deliveries.sender import Timeouts, build_request, send
from subscribers.secrets import generate_secret
from tests.receiver import Reply


def _request(url: str, secrets: list[str]):
    return build_request(
        url=url,
        message_id="0b3c6c52-9d0b-4a57-8ad1-6a5f0f3c2b11",
        event_type="order.created",
        occurred_at=datetime(2026, 11, 24, 12, 0, tzinfo=UTC),
        payload={"order_id": 42, "note": "crème brûlée"},
        secrets=secrets,
        now=datetime.now(UTC),  # signed now: receivers refuse timestamps over 5 minutes old
    )


def _send(request, *, total=2.0, read=2.0, excerpt_bytes=4096, allow_private=True):
    return send(
        request,
        timeouts=Timeouts(connect=1, read=read, total=total),
        excerpt_bytes=excerpt_bytes,
        allow_private=allow_private,
    )


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

    result = _send(_request(receiver.url(), [generate_secret()]), total=0.5)

    assert result.status_code is None
    assert result.error == "timeout: no complete response within 0.5s"
    assert result.duration_ms < 1500


def test_receiver_trickling_bytes_is_cut_off_at_the_total_deadline(receiver):
    # Each byte arrives well within the read timeout, so only the whole-request deadline stops it.
    receiver.default("/hook", Reply(trickle=0.1, body=b"x" * 100))

    result = _send(_request(receiver.url(), [generate_secret()]), total=1.0, read=5.0)

    assert result.error == "timeout: no complete response within 1s"
    assert 1000 <= result.duration_ms < 1600


def test_private_address_is_refused_at_send_time_without_contacting_it(receiver):
    result = _send(_request(receiver.url(), [generate_secret()]), allow_private=False)

    assert result.status_code is None
    assert "refused: 127.0.0.1 resolves to 127.0.0.1, a private" in result.error
    assert receiver.received() == []


def test_name_resolving_to_loopback_is_refused_at_send_time(receiver):
    url = f"http://localhost:{receiver.port}/hook"

    result = _send(_request(url, [generate_secret()]), allow_private=False)

    assert "refused: localhost resolves to" in result.error
    assert receiver.received() == []


def test_refused_connection_is_an_error_not_an_exception(receiver):
    url = receiver.url()
    receiver.close()

    result = _send(_request(url, [generate_secret()]))

    assert result.status_code is None
    assert result.error.startswith("connection error")


def test_during_a_rotation_each_secret_verifies_the_same_request():
    old, new = generate_secret(), generate_secret()
    request = _request("http://127.0.0.1/hook", [new, old])

    signatures = request.headers["webhook-signature"].split(" ")

    assert len(signatures) == 2 and all(sig.startswith("v1,") for sig in signatures)
    for secret in (old, new):
        assert Webhook(secret).verify(request.body, request.headers)["data"]["order_id"] == 42
