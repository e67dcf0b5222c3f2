"""`manage.py demo_receiver`: verifies every signature, and behaves per path and rate."""

from __future__ import annotations

import time

import pytest
import requests
from django.core.management import CommandError, call_command

from deliveries.sender import build_request
from subscribers.secrets import demo_secret, generate_secret
from subscribers.services import subscriber_create
from tests.e2e import cluster


def _post(url: str, *secrets: str, timeout: float = 10) -> requests.Response:
    from django.utils import timezone

    request = build_request(
        url=url,
        message_id="msg_1",
        event_type="demo.order.created",
        occurred_at=timezone.now(),
        payload={"order_id": 1},
        secrets=list(secrets),
        now=timezone.now(),
    )
    return requests.post(request.url, data=request.body, headers=request.headers, timeout=timeout)


def test_paths_behave_as_named_whatever_the_rates(demo_receiver):
    receiver = demo_receiver("--fail-rate", "1")

    assert _post(f"{receiver.url}/healthy", demo_secret()).status_code == 200
    assert _post(f"{receiver.url}/dead", demo_secret()).status_code == 410
    assert _post(f"{receiver.url}/flaky", demo_secret()).status_code == 500
    assert receiver.wait_for_lines(3)[0].startswith("200 /healthy msg_1 demo.order.created")


def test_a_wrong_signature_is_refused_and_printed(demo_receiver):
    receiver = demo_receiver()

    response = _post(f"{receiver.url}/healthy", generate_secret())

    assert response.status_code == 401
    assert response.json() == {"result": "signature did not verify"}
    assert receiver.wait_for_lines(1) == ["401 /healthy signature did not verify"]


def test_slow_rate_hangs_before_answering(demo_receiver):
    receiver = demo_receiver("--slow-rate", "1", "--slow-seconds", "0.5")

    started = time.monotonic()
    response = _post(f"{receiver.url}/flaky", demo_secret())

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.5
    assert receiver.wait_for_lines(1)[0].endswith("(after 0.5s)")


def test_a_rotated_secret_still_verifies_with_either_signature(demo_receiver):
    receiver = demo_receiver()

    # The demo secret rotated out: the request carries the new signature and the old one.
    assert _post(f"{receiver.url}/healthy", generate_secret(), demo_secret()).status_code == 200


def test_explicit_secrets_replace_the_demo_secret(demo_receiver):
    secret = generate_secret()
    receiver = demo_receiver("--secret", secret)

    assert _post(f"{receiver.url}/healthy", secret).status_code == 200
    assert _post(f"{receiver.url}/healthy", demo_secret()).status_code == 401


@pytest.mark.django_db(transaction=True)
def test_hand_made_subscribers_verify_with_their_own_secret(demo_receiver):
    receiver = demo_receiver(database_url=cluster.test_database_url())
    subscriber = subscriber_create(
        name="mine", endpoint_url=f"{receiver.url}/mine", event_types=["*"]
    )

    assert _post(f"{receiver.url}/mine", subscriber.secret).status_code == 200
    assert _post(f"{receiver.url}/other", subscriber.secret).status_code == 401


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fail-rate", "1.5"], "--fail-rate must be between 0 and 1"),
        (["--fail-rate", "0.6", "--slow-rate", "0.6"], "add up to more than 1"),
    ],
)
def test_bad_rates_are_clear_errors(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("demo_receiver", *args)
