"""What changes to subscribers announce, for apps this one must not import.

Sent inside the transaction that made the change, so a receiver's writes (the events app
publishes them as Herald's operational events) commit or roll back with it. Each is sent with
`subscriber_ids` (those that made the transition), `reason`, `manual` (an operator did it) and
`now`.
"""

from __future__ import annotations

from django.dispatch import Signal

circuit_opened = Signal()  # closed -> open; re-opening after a failed probe is not announced
circuit_closed = Signal()  # open or half-open -> closed
subscribers_disabled = Signal()  # active -> inactive (410 Gone, or paused by an operator)
