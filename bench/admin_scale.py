"""The operators' console at scale: every admin list and the dashboard over a million deliveries.

    python bench/admin_scale.py [--deliveries 1000000] [--database-url postgres://.../herald_scale]

Fills a fresh PostgreSQL database (created if missing, emptied first) with a week of history:
20 subscribers, deliveries / 5 events of five types, every delivery with its attempts (90 %
delivered, 5 % retrying, 3 % failed with a dead letter, 2 % pending), then ANALYZEs it as
autovacuum would. Then it opens each page as a logged-in operator through Django's test client,
three times, and prints the median time, the number of queries, and whether any query read a
big table sequentially (EXPLAIN). Exit status 1 if any page did.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BIG_TABLES = (
    "events_event",
    "deliveries_delivery",
    "deliveries_deliveryattempt",
    "deadletters_deadletter",
)
# A sequential scan reading more rows than this on a big table fails the run.
SCAN_ROWS_ALLOWED = 20_000
EVENT_TYPES = ("order.created", "order.paid", "invoice.paid", "shipment.sent", "user.signup")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/herald_scale")
    parser.add_argument("--keep", action="store_true", help="Reuse the data of an earlier run.")
    args = parser.parse_args()

    _create_database(args.database_url)
    os.environ["DATABASE_URL"] = args.database_url
    os.environ["ALLOWED_HOSTS"] = "testserver"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # whitenoise looks for collected static files, which a measurement never needs.
    warnings.filterwarnings("ignore", message="No directory at")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if not args.keep:
        started = time.monotonic()
        _fill(args.deliveries)
        print(f"filled {args.deliveries:,} deliveries in {time.monotonic() - started:.0f}s")
    return _measure()


def _create_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if exists.fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')


def _fill(deliveries: int) -> None:
    from django.db import connection

    events = deliveries // 5
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE deadletters_deadletter, deliveries_deliveryattempt, deliveries_delivery, "
            "events_event, subscribers_subscriber, django_q_ormq, django_admin_log CASCADE"
        )
        cursor.execute(
            """
            INSERT INTO subscribers_subscriber (
                id, name, endpoint_url, event_types, secret, previous_secret,
                is_active, deactivated_reason, circuit_state, consecutive_failures,
                circuit_manual, circuit_reason, created_at, updated_at)
            SELECT gen_random_uuid(), 'subscriber ' || lpad(n::text, 2, '0'),
                   'https://receiver-' || n || '.example.com/hooks', '["*"]',
                   'whsec_c2NhbGUtYmVuY2gtc2VjcmV0LWJ5dGVzLTAx', '', n <> 7, '',
                   CASE WHEN n = 3 THEN 'open' ELSE 'closed' END, 0, false, '', now(), now()
            FROM generate_series(1, 20) n
            """
        )
        # A week of events, newest first every three seconds or so.
        cursor.execute(
            """
            INSERT INTO events_event (id, event_type, payload, idempotency_key,
                                      request_fingerprint, source_delivery_id, created_at)
            SELECT gen_random_uuid(), (%s::text[])[1 + n %% 5],
                   jsonb_build_object('order_id', n, 'amount_cents', n %% 9000),
                   '', '', '', now() - n * (interval '7 days' / %s)
            FROM generate_series(1, %s) n
            """,
            [list(EVENT_TYPES), events, events],
        )
        cursor.execute(
            """
            INSERT INTO deliveries_delivery (
                id, event_id, subscriber_id, status, attempt_count, attempts_made,
                next_attempt_at, enqueued_at, last_status_code, last_error, delivered_at,
                created_at, updated_at)
            SELECT gen_random_uuid(), e.id, subs.ids[1 + (e.rn + k * 4) % 20],
                   s.status,
                   CASE s.status WHEN 'delivered' THEN 1 WHEN 'pending' THEN 0 ELSE 3 END,
                   CASE s.status WHEN 'delivered' THEN 1 WHEN 'pending' THEN 0 ELSE 3 END,
                   CASE WHEN s.status IN ('retrying', 'pending')
                        THEN now() + interval '10 minutes' END,
                   CASE WHEN s.status IN ('retrying', 'pending') THEN e.created_at END,
                   CASE s.status WHEN 'delivered' THEN 200 WHEN 'pending' THEN NULL ELSE 503 END,
                   CASE WHEN s.status IN ('retrying', 'failed') THEN 'HTTP 503' ELSE '' END,
                   CASE WHEN s.status = 'delivered'
                        THEN e.created_at + interval '80 milliseconds' END,
                   e.created_at, e.created_at
            FROM (SELECT id, created_at, row_number() OVER () AS rn FROM events_event) e
            CROSS JOIN generate_series(0, 4) k
            CROSS JOIN (SELECT array_agg(id ORDER BY name) AS ids
                        FROM subscribers_subscriber) subs
            CROSS JOIN LATERAL (
                SELECT CASE WHEN r < 0.90 THEN 'delivered' WHEN r < 0.95 THEN 'retrying'
                            WHEN r < 0.98 THEN 'failed' ELSE 'pending' END AS status
                FROM (SELECT random() + 0 * e.rn + 0 * k AS r) roll) s
            """
        )
        cursor.execute(
            """
            INSERT INTO deliveries_deliveryattempt (
                delivery_id, number, started_at, finished_at, duration_ms, request_headers,
                status_code, response_excerpt, error)
            SELECT d.id, a.number, d.created_at + a.number * interval '30 seconds',
                   d.created_at + a.number * interval '30 seconds' + interval '80 milliseconds',
                   40 + (a.number * 37) % 200, '{}'::jsonb,
                   CASE WHEN d.status = 'delivered' THEN 200 ELSE 503 END,
                   CASE WHEN d.status = 'delivered' THEN '{"ok": true}' ELSE 'unavailable' END,
                   CASE WHEN d.status = 'delivered' THEN '' ELSE 'HTTP 503' END
            FROM deliveries_delivery d
            CROSS JOIN LATERAL generate_series(1, d.attempt_count) AS a(number)
            """
        )
        cursor.execute(
            """
            INSERT INTO deadletters_deadletter (id, delivery_id, reason, last_status_code,
                                                last_error, attempt_count,
                                                created_at, resolved_at, resolution)
            SELECT gen_random_uuid(), id, 'all 12 attempts failed; last: HTTP 503', 503,
                   'HTTP 503', 12,
                   created_at + interval '40 hours',
                   CASE WHEN random() < 0.5 THEN now() END,
                   CASE WHEN random() < 0.5 THEN 'resolved' ELSE '' END
            FROM deliveries_delivery WHERE status = 'failed'
            """
        )
        # Keep the pair (resolved_at, resolution) consistent, as the services do.
        cursor.execute(
            "UPDATE deadletters_deadletter SET resolved_at = NULL, resolution = '' "
            "WHERE resolution = '' OR resolved_at IS NULL"
        )
        cursor.execute("ANALYZE")


def _measure() -> int:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from deadletters.models import DeadLetter
    from deliveries.models import Delivery
    from events.models import Event
    from subscribers.models import Subscriber

    user, _ = get_user_model().objects.get_or_create(
        username="scale-operator", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    subscriber = Subscriber.objects.order_by("name").first()
    delivery = Delivery.objects.order_by("-created_at").first()
    event = Event.objects.order_by("-created_at").first()
    letter = DeadLetter.objects.order_by("-created_at").first()
    counts = {
        table: _estimate(connection, table)
        for table in ("events_event", "deliveries_delivery", "deliveries_deliveryattempt")
    }
    print(
        "rows: "
        + ", ".join(f"{table.split('_', 1)[1]} ~{count:,}" for table, count in counts.items())
    )
    pages = [
        ("dashboard", "/dashboard/"),
        ("dashboard live fragment", "/dashboard/live/"),
        ("subscribers", "/admin/subscribers/subscriber/"),
        ("subscribers, circuit open", "/admin/subscribers/subscriber/?circuit_state__exact=open"),
        ("events", "/admin/events/event/"),
        ("events, one type", "/admin/events/event/?event_type=invoice.paid"),
        ("events, search by id", f"/admin/events/event/?q={event.pk}"),
        ("event page", f"/admin/events/event/{event.pk}/change/"),
        ("deliveries", "/admin/deliveries/delivery/"),
        ("deliveries, retrying", "/admin/deliveries/delivery/?status__exact=retrying"),
        (
            "deliveries, one subscriber",
            f"/admin/deliveries/delivery/?subscriber__id__exact={subscriber.pk}",
        ),
        (
            "deliveries, failed + subscriber",
            f"/admin/deliveries/delivery/?status__exact=failed&subscriber__id__exact={subscriber.pk}",
        ),
        ("deliveries, search by event id", f"/admin/deliveries/delivery/?q={event.pk}"),
        ("deliveries, today", _today("/admin/deliveries/delivery/")),
        ("delivery page", f"/admin/deliveries/delivery/{delivery.pk}/change/"),
        ("dead letters", "/admin/deadletters/deadletter/"),
        ("dead letters, unresolved", "/admin/deadletters/deadletter/?state=unresolved"),
        (
            "dead letters, one subscriber",
            f"/admin/deadletters/deadletter/?delivery__subscriber__id__exact={subscriber.pk}",
        ),
        ("dead letters, one type", "/admin/deadletters/deadletter/?event_type=order.paid"),
        ("dead letter page", f"/admin/deadletters/deadletter/{letter.pk}/change/"),
    ]
    print(f"{'page':<34} {'median ms':>10} {'queries':>8}  big tables read sequentially")
    failed = False
    for name, url in pages:
        timings = []
        for _ in range(3):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get(url)
                timings.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                print(f"{name}: HTTP {response.status_code}")
                return 1
        scans = _sequential_scans(connection, captured.captured_queries)
        failed |= bool(scans)
        described = ", ".join(f"{table} ({rows:,} rows)" for table, rows in scans.items())
        print(
            f"{name:<34} {statistics.median(timings):>10.1f} {len(captured):>8}  {described or '-'}"
        )
    return 1 if failed else 0


def _today(url: str) -> str:
    from django.utils import timezone

    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    return f"{url}?created_at__gte={midnight.isoformat().replace('+', '%2B')}"


def _estimate(connection, table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = %s", [table])
        return cursor.fetchone()[0]


def _sequential_scans(connection, queries) -> dict[str, int]:
    """Rows each big table had read by sequential scans in the page's queries (EXPLAIN ANALYZE).

    A scan that stops early under a LIMIT (the dashboard's capped counts) reads few rows and is
    fine; only scans reading more than SCAN_ROWS_ALLOWED rows are reported.
    """
    found: dict[str, int] = {}
    with connection.cursor() as cursor:
        for query in queries:
            sql = query["sql"]
            if not sql.startswith("SELECT") or not any(t in sql for t in BIG_TABLES):
                continue
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
            plan = cursor.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            for table, rows in _scanned(plan[0]["Plan"]):
                if rows > SCAN_ROWS_ALLOWED:
                    found[table] = found.get(table, 0) + rows
    return found


def _scanned(node: dict):
    if node.get("Node Type") == "Seq Scan" and node.get("Relation Name") in BIG_TABLES:
        read = node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
        yield node["Relation Name"], int(read * node.get("Actual Loops", 1))
    for child in node.get("Plans", []):
        yield from _scanned(child)


if __name__ == "__main__":
    sys.exit(main())
