"""`manage.py demo` end to end against a real `manage.py demo_receiver`, deliveries run here."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from deadletters.models import DeadLetter
from deliveries.models import Delivery
from subscribers.models import Subscriber
from tests.jobs import run_due_jobs

pytestmark = pytest.mark.django_db


def _demo(receiver_url: str, events: int = 6) -> str:
    out = StringIO()
    call_command(
        "demo", receiver=receiver_url, events=events, site="http://herald.test", stdout=out
    )
    return out.getvalue()


def _statuses(name: str) -> list[str]:
    return sorted(Delivery.objects.filter(subscriber__name=name).values_list("status", flat=True))


def test_demo_shows_healthy_flaky_and_dead_receivers(demo_receiver, settings):
    settings.HERALD_RETRY_SCHEDULE = [60]
    settings.HERALD_BREAKER_THRESHOLD = 3
    receiver = demo_receiver("--fail-rate", "1")

    output = _demo(receiver.url)
    run_due_jobs()

    assert _statuses("demo: healthy") == ["delivered"] * 6
    # Three failures in a row open the flaky receiver's circuit: the rest wait, unsent.
    flaky = Delivery.objects.filter(subscriber__name="demo: flaky")
    assert (
        sorted((d.status, d.last_status_code or 0) for d in flaky)
        == [("pending", 0)] * 3 + [("retrying", 500)] * 3
    )
    assert Subscriber.objects.get(name="demo: flaky").circuit_state == "open"
    dead = Subscriber.objects.get(name="demo: dead")
    assert not dead.is_active and "410 Gone" in dead.deactivated_reason
    letters = DeadLetter.objects.filter(delivery__subscriber=dead)
    assert letters.count() >= 1
    assert all("410 Gone" in letter.reason for letter in letters)
    # The receiver verified every signature (an unverified request would have been a 401).
    lines = receiver.wait_for_lines(6 + 3 + letters.count())
    assert not [line for line in lines if line.startswith("401")]
    assert sum(line.startswith("200 /healthy") for line in lines) == 6
    assert sum(line.startswith("500 /flaky") for line in lines) == 3
    assert "http://herald.test/dashboard/" in output
    assert "Fired 6 events: 18 deliveries queued" in output


def test_demo_again_reuses_and_revives_its_subscribers(demo_receiver):
    receiver = demo_receiver()
    _demo(receiver.url, events=1)
    run_due_jobs()
    assert not Subscriber.objects.get(name="demo: dead").is_active
    Subscriber.objects.filter(name="demo: flaky").update(circuit_state="open", circuit_manual=True)

    _demo(receiver.url, events=1)

    demo = Subscriber.objects.filter(name__startswith="demo: ")
    assert demo.count() == 3
    assert all(s.is_active and s.circuit_state == "closed" for s in demo)


def test_demo_refuses_a_private_receiver_when_private_targets_are_off(settings):
    settings.HERALD_ALLOW_PRIVATE_TARGETS = False

    with pytest.raises(CommandError, match="HERALD_ALLOW_PRIVATE_TARGETS"):
        _demo("http://127.0.0.1:9000")

    assert not Subscriber.objects.exists()


def test_demo_warns_when_no_receiver_listens(db):
    output = _demo("http://127.0.0.1:9")

    assert "Nothing answers at http://127.0.0.1:9" in output


def test_demo_rejects_a_burst_out_of_range(db):
    with pytest.raises(CommandError, match="--events must be between 1 and"):
        _demo("http://127.0.0.1:9000", events=0)
