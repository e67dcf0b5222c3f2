"""One delivery attempted on its own, outside a dispatcher: claim, send, record."""

from __future__ import annotations

from django.utils import timezone

from deliveries import policy
from deliveries.claims import delivery_claim
from deliveries.dispatcher import log_attempt
from deliveries.outcomes import Sent, delivery_record_outcome
from deliveries.sender import send


def delivery_attempt(*, delivery_id: str) -> str:
    """Attempt a delivery if it is due; safe to call any number of times for the same id."""
    claim = delivery_claim(delivery_id=delivery_id, now=timezone.now())
    if claim is None:
        return "skipped"
    result = send(claim.request, **policy.send_options())
    outcome = delivery_record_outcome(claim=claim, result=result, now=timezone.now())
    log_attempt(Sent(claim, result), outcome)
    return outcome
