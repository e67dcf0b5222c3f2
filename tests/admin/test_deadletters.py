"""Dead letters: the list, its filters, and the replay / resolve actions."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from deadletters.models import DeadLetter
from deliveries.models import Delivery
from tests.admin.conftest import logged, messages_of, run_action
from tests.queue import queued

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:deadletters_deadletter_changelist")


def test_list_shows_reason_response_subscriber_type_and_age(operator_client, make_dead_letter):
    make_dead_letter(event_type="invoice.paid")

    html = operator_client.get(CHANGELIST).content.decode()

    for shown in ["all 12 attempts failed", "503: HTTP 503", "receiver", "invoice.paid", "minute"]:
        assert shown in html


def _replay_queries(client, letters) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            CHANGELIST,
            {"action": "replay_dead_letters", "_selected_action": [str(x.pk) for x in letters]},
        )
    assert response.status_code == 302
    return len(queries)


def test_replay_is_one_bulk_operation_and_counts_the_already_resolved(
    operator_client, make_dead_letter
):
    # No more statements for 15 letters than for 2: no query per letter.
    few = _replay_queries(operator_client, [make_dead_letter() for _ in range(2)])
    open_letters = [make_dead_letter() for _ in range(12)]
    resolved = [make_dead_letter(resolved=True) for _ in range(3)]
    assert _replay_queries(operator_client, open_letters + resolved) <= few

    response = operator_client.get(CHANGELIST)

    assert messages_of(response)[-1] == "Replayed 12 dead letters; 3 were already resolved."
    assert DeadLetter.objects.filter(resolution="replayed").count() == 14
    assert (
        Delivery.objects.filter(dead_letters__resolution="replayed", status="pending").count() == 14
    )
    queued_ids = {delivery_id for delivery_id, _ in queued()}
    assert {str(letter.delivery_id) for letter in open_letters} <= queued_ids
    assert not {str(letter.delivery_id) for letter in resolved} & queued_ids
    assert logged(open_letters[0]) == ["Replayed (admin action replay_dead_letters)."]
    assert logged(resolved[0]) == []


def test_resolve_marks_them_resolved_without_sending(operator_client, make_dead_letter):
    letter = make_dead_letter()

    response = run_action(
        operator_client, "deadletters.deadletter", "resolve_dead_letters", [letter]
    )

    assert messages_of(response) == ["Resolved 1 dead letter."]
    letter.refresh_from_db()
    assert letter.resolution == "resolved"
    assert str(letter.delivery_id) not in {delivery_id for delivery_id, _ in queued()}
    assert logged(letter) == ["Resolved without replaying (admin action resolve_dead_letters)."]


def test_nothing_to_replay_is_a_warning(operator_client, make_dead_letter):
    letter = make_dead_letter(resolved=True)

    response = run_action(
        operator_client, "deadletters.deadletter", "replay_dead_letters", [letter]
    )

    (message,) = response.context["messages"]
    assert str(message) == "Replayed 0 dead letters; 1 was already resolved."
    assert message.level_tag == "warning"


def test_actions_need_the_change_permission(viewer_client, make_dead_letter):
    letter = make_dead_letter()

    run_action(viewer_client, "deadletters.deadletter", "replay_dead_letters", [letter])

    letter.refresh_from_db()
    assert letter.resolved_at is None


def test_filters_by_state_subscriber_and_event_type(
    operator_client, make_dead_letter, make_subscriber
):
    other = make_subscriber(name="other")
    unresolved = make_dead_letter(event_type="order.created")
    resolved = make_dead_letter(event_type="invoice.paid", resolved=True)
    theirs = make_dead_letter(subscriber=other, event_type="order.created")

    def shown(**params):
        return set(operator_client.get(CHANGELIST, params).context["cl"].result_list)

    assert shown(state="unresolved") == {unresolved, theirs}
    assert shown(state="resolved") == {resolved}
    assert shown(**{"delivery__subscriber__id__exact": other.pk}) == {theirs}
    assert shown(event_type="invoice.paid") == {resolved}
    assert shown(q=str(theirs.delivery.event_id)) == {theirs}
