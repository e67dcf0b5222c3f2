"""The dead-letter endpoints: list, detail, replay and resolve."""

from __future__ import annotations

import uuid

import pytest

from deadletters.models import DeadLetter
from deliveries.models import Delivery
from tests.queue import queued

URL = "/api/v1/dead-letters"


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


# --- list and detail ------------------------------------------------------------------------------


def test_list_shows_dead_letters_newest_first(api, make_dead_letter):
    older = make_dead_letter()
    newer = make_dead_letter()

    response = api.get(URL)

    assert _ids(response) == [str(newer.id), str(older.id)]
    assert "next" in response.json()


def test_list_filters_by_subscriber_id(api, make_subscriber, make_dead_letter):
    subscriber = make_subscriber(name="flaky", event_types=["*"])
    wanted = make_dead_letter(subscriber=subscriber)
    make_dead_letter()

    response = api.get(URL, {"subscriber_id": str(subscriber.id)})

    assert _ids(response) == [str(wanted.id)]
    assert response.json()["results"][0]["subscriber_id"] == str(subscriber.id)


def test_list_filters_by_resolved(api, make_dead_letter):
    open_letter = make_dead_letter()
    resolved_letter = make_dead_letter(resolved=True)

    resolved = api.get(URL, {"resolved": "true"})
    unresolved = api.get(URL, {"resolved": "false"})
    everything = api.get(URL)

    assert _ids(resolved) == [str(resolved_letter.id)]
    assert _ids(unresolved) == [str(open_letter.id)]
    assert set(_ids(everything)) == {str(open_letter.id), str(resolved_letter.id)}


@pytest.mark.parametrize("value", ["maybe", "yes", "1"])
def test_invalid_resolved_filter_is_400_naming_it(api, make_dead_letter, value):
    make_dead_letter()

    response = api.get(URL, {"resolved": value})

    assert response.status_code == 400
    assert "resolved" in response.json()["error"]["fields"]


def test_malformed_subscriber_id_filter_is_400_naming_it(api):
    response = api.get(URL, {"subscriber_id": "not-a-uuid"})

    assert response.status_code == 400
    assert "subscriber_id" in response.json()["error"]["fields"]


def test_detail_describes_the_dead_letter(api, make_dead_letter):
    letter = make_dead_letter(event_type="invoice.paid")
    delivery = letter.delivery

    response = api.get(f"{URL}/{letter.id}")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(letter.id)
    assert body["delivery_id"] == str(delivery.id)
    assert body["event_id"] == str(delivery.event_id)
    assert body["event_type"] == "invoice.paid"
    assert body["subscriber_id"] == str(delivery.subscriber_id)
    assert body["reason"] == "all 12 attempts failed; last: HTTP 503"
    assert body["last_status_code"] == 503
    assert body["last_error"] == "HTTP 503"
    assert body["attempt_count"] == 12
    assert body["resolved"] is False
    assert body["resolved_at"] is None
    assert body["resolution"] == ""


def test_detail_of_unknown_dead_letter_is_404(api):
    response = api.get(f"{URL}/{uuid.uuid4()}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_detail_with_malformed_id_is_404(api):
    response = api.get(f"{URL}/not-a-uuid")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# --- replay ---------------------------------------------------------------------------------------


def test_replay_resolves_the_letter_and_requeues_the_delivery(api, make_dead_letter):
    letter = make_dead_letter()
    queued_before = len(queued())

    response = api.post(f"{URL}/{letter.id}/replay")

    assert response.status_code == 202
    body = response.json()
    assert body["id"] == str(letter.id)
    assert body["resolved"] is True
    assert body["resolution"] == "replayed"
    assert body["resolved_at"]
    # The letter still says how the delivery died, though the delivery starts afresh.
    assert (body["attempt_count"], body["last_status_code"], body["last_error"]) == (
        12,
        503,
        "HTTP 503",
    )
    letter.refresh_from_db()
    assert letter.resolution == DeadLetter.Resolution.REPLAYED
    assert letter.resolved_at is not None
    delivery = Delivery.objects.get(pk=letter.delivery_id)
    assert delivery.status == Delivery.Status.PENDING
    assert delivery.attempt_count == 0
    assert delivery.next_attempt_at is not None
    assert len(queued()) == queued_before + 1


def test_replay_keeps_the_event_so_the_webhook_id_is_unchanged(api, make_dead_letter):
    letter = make_dead_letter()
    event_id = letter.delivery.event_id

    api.post(f"{URL}/{letter.id}/replay")

    assert Delivery.objects.get(pk=letter.delivery_id).event_id == event_id
    assert Delivery.objects.filter(event_id=event_id).count() == 1


def test_replay_twice_is_409_and_queues_nothing_more(api, make_dead_letter):
    letter = make_dead_letter()
    assert api.post(f"{URL}/{letter.id}/replay").status_code == 202
    queued_after_first = len(queued())

    response = api.post(f"{URL}/{letter.id}/replay")

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "conflict"
    assert "replayed" in error["message"]
    assert len(queued()) == queued_after_first


def test_replay_of_a_resolved_letter_is_409_and_leaves_the_delivery_failed(api, make_dead_letter):
    letter = make_dead_letter(resolved=True)
    queued_before = len(queued())

    response = api.post(f"{URL}/{letter.id}/replay")

    assert response.status_code == 409
    assert Delivery.objects.get(pk=letter.delivery_id).status == Delivery.Status.FAILED
    assert len(queued()) == queued_before


def test_replay_only_touches_its_own_letter(api, make_dead_letter):
    letter = make_dead_letter()
    other = make_dead_letter()

    api.post(f"{URL}/{letter.id}/replay")

    other.refresh_from_db()
    assert other.resolved_at is None
    assert Delivery.objects.get(pk=other.delivery_id).status == Delivery.Status.FAILED


def test_replay_of_unknown_dead_letter_is_404(api):
    response = api.post(f"{URL}/{uuid.uuid4()}/replay")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_replay_needs_a_key(client, make_dead_letter):
    letter = make_dead_letter()

    response = client.post(f"{URL}/{letter.id}/replay")

    assert response.status_code == 401
    letter.refresh_from_db()
    assert letter.resolved_at is None


# --- resolve --------------------------------------------------------------------------------------


def test_resolve_marks_the_letter_resolved_without_sending(api, make_dead_letter):
    letter = make_dead_letter()
    queued_before = len(queued())

    response = api.post(f"{URL}/{letter.id}/resolve")

    assert response.status_code == 200
    body = response.json()
    assert body["resolved"] is True
    assert body["resolution"] == "resolved"
    letter.refresh_from_db()
    assert letter.resolution == DeadLetter.Resolution.RESOLVED
    assert len(queued()) == queued_before
    delivery = Delivery.objects.get(pk=letter.delivery_id)
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.attempt_count == 12


def test_resolve_twice_is_409(api, make_dead_letter):
    letter = make_dead_letter()
    api.post(f"{URL}/{letter.id}/resolve")

    response = api.post(f"{URL}/{letter.id}/resolve")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"


def test_resolve_after_replay_is_409(api, make_dead_letter):
    letter = make_dead_letter()
    api.post(f"{URL}/{letter.id}/replay")

    response = api.post(f"{URL}/{letter.id}/resolve")

    assert response.status_code == 409
    letter.refresh_from_db()
    assert letter.resolution == DeadLetter.Resolution.REPLAYED


def test_resolve_of_unknown_dead_letter_is_404(api):
    response = api.post(f"{URL}/{uuid.uuid4()}/resolve")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("method", ["patch", "delete"])
def test_dead_letters_cannot_be_edited_or_deleted(api, make_dead_letter, method):
    letter = make_dead_letter()

    response = getattr(api, method)(f"{URL}/{letter.id}", {"reason": "x"}, format="json")

    assert response.status_code == 405
    assert DeadLetter.objects.filter(pk=letter.pk, resolved_at=None).exists()
