"""What the delivery engine announces, for apps it must not import.

Sent inside the transaction that made the change (see subscribers.signals for why).
"""

from __future__ import annotations

from django.dispatch import Signal

# A delivery failed for good and is now a dead letter. Sent with `delivery`, `dead_letter`, `now`.
delivery_dead_lettered = Signal()
