"""One delivery attempt end to end: claim (short transaction), send (no transaction), record."""

from __future__ import annotations

import logging

from django.conf import settings
from django.utils import timezone

from deliveries.attempts import delivery_claim, delivery_record_outcome
from deliveries.sender import Timeouts, send

logger = logging.getLogger(__name__)


def delivery_attempt(*, delivery_id: str) -> str:
    """Attempt a delivery if it is due; safe to call any number of times for the same id."""
    claim = delivery_claim(delivery_id=delivery_id, now=timezone.now())
    if claim is None:
        return "skipped"
    result = send(
        claim.request,
        timeouts=Timeouts(
            connect=settings.HERALD_CONNECT_TIMEOUT,
            read=settings.HERALD_READ_TIMEOUT,
            total=settings.HERALD_DELIVERY_TIMEOUT,
        ),
        excerpt_bytes=settings.HERALD_RESPONSE_EXCERPT_BYTES,
        allow_private=settings.HERALD_ALLOW_PRIVATE_TARGETS,
    )
    outcome = delivery_record_outcome(claim=claim, result=result, now=timezone.now())
    logger.info(
        "delivery attempt delivery_id=%s event_id=%s subscriber_id=%s attempt=%s "
        "status_code=%s duration_ms=%s outcome=%s",
        claim.delivery.pk,
        claim.delivery.event_id,
        claim.delivery.subscriber_id,
        claim.attempt.number,
        result.status_code,
        result.duration_ms,
        outcome,
    )
    return outcome
