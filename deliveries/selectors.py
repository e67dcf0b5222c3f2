"""Reads of deliveries."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from deliveries.models import Delivery, DeliveryAttempt


def deliveries_list() -> QuerySet[Delivery]:
    return Delivery.objects.all()


def delivery_with_attempts() -> QuerySet[Delivery]:
    return Delivery.objects.prefetch_related(
        Prefetch("attempts", queryset=DeliveryAttempt.objects.order_by("number"))
    )
