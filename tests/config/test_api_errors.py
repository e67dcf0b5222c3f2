"""The API's exception handler: which errors become which answers."""

from __future__ import annotations

from config.api.exceptions import api_exception_handler
from events.models import Source
from subscribers.api import SubscriberViewSet
from subscribers.models import Subscriber


def test_a_row_of_the_views_model_deleted_meanwhile_is_a_404():
    response = api_exception_handler(Subscriber.DoesNotExist(), {"view": SubscriberViewSet()})

    assert response.status_code == 404
    assert response.data["error"]["code"] == "not_found"


def test_a_missing_row_of_another_model_is_left_to_answer_500():
    # Not a row the client asked for: a bug, which a 404 would hide.
    assert api_exception_handler(Source.DoesNotExist(), {"view": SubscriberViewSet()}) is None
