"""What an API key may do. Each key holds a set of scopes an operator grants in the admin.

A producer that only publishes gets `events:publish` and nothing else: it cannot read other
teams' events and deliveries, nor change who receives what.
"""

from __future__ import annotations

from django.db import models


class Scope(models.TextChoices):
    EVENTS_PUBLISH = (
        "events:publish",
        "events:publish: publish events (POST /events, /events/batch)",
    )
    READ = "read", "read: read events, deliveries, dead letters, subscribers, sources, metrics"
    SUBSCRIBERS_MANAGE = (
        "subscribers:manage",
        "subscribers:manage: create, change and delete subscribers; open and reset circuits",
    )
    SOURCES_MANAGE = (
        "sources:manage",
        "sources:manage: create, change and delete inbound sources; rotate their secrets",
    )
    DEADLETTERS_MANAGE = "deadletters:manage", "deadletters:manage: replay and resolve dead letters"
    METRICS = (
        "metrics",
        "metrics: read the metrics (GET /metrics, /api/v1/metrics) and nothing else",
    )


ALL_SCOPES: tuple[str, ...] = tuple(Scope.values)


def unknown_scopes(scopes: list[str]) -> list[str]:
    return [scope for scope in scopes if scope not in ALL_SCOPES]
