"""POST /api/v1/ingest/<slug>: real provider-signed requests verified, stored once, fanned out."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from deliveries.engine import delivery_attempt
from deliveries.models import Delivery
from events.models import Event, Source
from events.services import event_receive
from events.sources import source_create, source_rotate_secret
from tests.events.inbound_signing import CASES, Case, github_headers, hex_hmac, stripe_headers
from tests.queue import queued

pytestmark = pytest.mark.django_db

BY_SCHEME = {case.scheme: case for case in CASES}
TIMESTAMPED = [case for case in CASES if case.timestamped]


def _ids(case: Case) -> str:
    return case.scheme


@pytest.fixture
def sender() -> Client:
    # CSRF checks on, as in production: the endpoint must not need a token.
    return Client(enforce_csrf_checks=True)


def _another_secret(case: Case) -> str | None:
    """A secret of the case's kind other than its source's: Stripe's is pasted, others made."""
    return "whsec_anotherStripeSecretForTests456" if case.scheme == "stripe" else None


def _source(case: Case, **overrides) -> Source:
    fields = {"slug": case.slug, "name": case.slug.title(), "scheme": case.scheme}
    fields.update(case.source_fields)
    fields.update(overrides)
    return source_create(**fields)


def _post(sender: Client, slug: str, body: bytes, headers: dict[str, str]):
    return sender.post(
        f"/api/v1/ingest/{slug}", data=body, content_type="application/json", headers=headers
    )


def _stored() -> tuple[int, int, int]:
    return Event.objects.count(), Delivery.objects.count(), len(queued())


def _assert_rejected(response, source: Source, reason: str) -> None:
    assert response.status_code == 401, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_signature"
    assert reason in error["message"]
    assert _stored() == (0, 0, 0)
    source.refresh_from_db()
    assert source.rejected_count == 1
    assert reason in source.last_rejection_reason
    assert source.last_rejected_at is not None


# --- accepted -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_signed_request_is_stored_and_fans_out(sender, make_subscriber, case):
    source = _source(case)
    prefix = make_subscriber(name="prefix", event_types=[f"{case.slug}.*"])
    exact = make_subscriber(name="exact", event_types=[case.event_type])
    make_subscriber(name="other", event_types=["order.*", "github.push"])

    response = _post(sender, case.slug, case.raw, case.sign(source.secret))

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["event_type"] == case.event_type
    assert body["delivery_count"] == 2
    event = Event.objects.get(pk=body["id"])
    assert event.event_type == case.event_type
    assert event.payload == case.body
    assert event.source == source
    assert event.source_delivery_id == case.delivery_id
    deliveries = Delivery.objects.filter(event=event)
    assert {d.subscriber_id for d in deliveries} == {prefix.pk, exact.pk}
    assert len(queued()) == 2


def test_github_event_without_action_is_the_header_alone(sender):
    case = BY_SCHEME["github"]
    source = _source(case)
    body = json.dumps({"ref": "refs/heads/main", "commits": []}).encode()

    response = _post(sender, "github", body, github_headers(source.secret, body, event="push"))

    assert response.status_code == 202
    assert response.json()["event_type"] == "github.push"


def test_stripe_accepts_any_of_several_v1_signatures(sender):
    case = BY_SCHEME["stripe"]
    source = _source(case, secret="whsec_test_0123456789abcdef")
    # Stripe, while rolling a secret, sends one v1 per secret; ours is the second one here.
    headers = stripe_headers(source.secret, case.raw, also=("whsec_someone_elses",))
    assert headers["Stripe-Signature"].count("v1=") == 2

    response = _post(sender, "stripe", case.raw, headers)

    assert response.status_code == 202, response.content


def test_hmac_without_idempotency_key_is_not_deduplicated(sender):
    case = BY_SCHEME["hmac"]
    source = _source(case)
    first = _post(sender, "shop", case.raw, case.sign(source.secret, key=None))
    second = _post(sender, "shop", case.raw, case.sign(source.secret, key=None))

    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["id"] != second.json()["id"]
    assert Event.objects.filter(source=source, source_delivery_id="").count() == 2


def test_api_key_header_is_not_needed_nor_checked(sender):
    case = BY_SCHEME["github"]
    source = _source(case)
    headers = {**case.sign(source.secret), "Authorization": "Bearer not-a-key"}

    response = _post(sender, "github", case.raw, headers)

    assert response.status_code == 202


def test_request_does_no_delivery_work_and_a_worker_delivers_it(sender, make_subscriber, receiver):
    case = BY_SCHEME["github"]
    source = _source(case)
    subscriber = make_subscriber(endpoint_url=receiver.url(), event_types=["github.issues.*"])

    response = _post(sender, "github", case.raw, case.sign(source.secret))

    assert response.status_code == 202
    assert receiver.received() == []  # answered before anything is sent: a worker does that
    delivery = Delivery.objects.get(subscriber=subscriber)

    assert delivery_attempt(delivery_id=str(delivery.pk)) == "delivered"

    (got,) = receiver.received()
    assert got.headers["webhook-id"] == response.json()["id"]
    verified = Webhook(subscriber.secret).verify(got.body, got.headers)
    assert verified["type"] == "github.issues.opened"
    assert verified["data"] == case.body


# --- rejected: nothing stored, the rejection counted ---------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_wrong_secret_is_rejected(sender, case):
    source = _source(case)
    # A valid secret of the same kind, not this one's.
    other = _source(case, slug="other", secret=_another_secret(case)).secret

    response = _post(sender, case.slug, case.raw, case.sign(other))

    _assert_rejected(response, source, "Signature does not match")


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_tampered_body_is_rejected(sender, case):
    source = _source(case)
    headers = case.sign(source.secret)
    tampered = case.raw.replace(b"}", b', "admin": true}', 1)

    response = _post(sender, case.slug, tampered, headers)

    _assert_rejected(response, source, "Signature does not match")


@pytest.mark.parametrize("skew", [-400, 400], ids=["stale", "future"])
@pytest.mark.parametrize("case", TIMESTAMPED, ids=_ids)
def test_timestamp_outside_five_minutes_is_rejected(sender, case, skew):
    source = _source(case)

    at = int(time.time()) + skew

    response = _post(sender, case.slug, case.raw, case.sign(source.secret, at=at))

    _assert_rejected(response, source, "more than 5 minutes from our clock")


@pytest.mark.parametrize(
    ("scheme", "header"),
    [
        ("github", "X-Hub-Signature-256"),
        ("stripe", "Stripe-Signature"),
        ("standard", "webhook-signature"),
        ("standard", "webhook-timestamp"),
        ("hmac", "X-Signature"),
        ("hmac", "X-Timestamp"),
    ],
)
def test_missing_header_is_rejected(sender, scheme, header):
    case = BY_SCHEME[scheme]
    source = _source(case)
    headers = {k: v for k, v in case.sign(source.secret).items() if k != header}

    response = _post(sender, case.slug, case.raw, headers)

    _assert_rejected(response, source, f"Missing {header} header")


@pytest.mark.parametrize(
    ("scheme", "header", "value", "reason"),
    [
        ("github", "X-Hub-Signature-256", "sha1=0123abcd", "Malformed X-Hub-Signature-256"),
        ("github", "X-Hub-Signature-256", "sha256=" + "zz" * 32, "Malformed X-Hub-Signature-256"),
        ("stripe", "Stripe-Signature", "garbage", "Malformed Stripe-Signature"),
        ("stripe", "Stripe-Signature", "t=yesterday,v1=" + "ab" * 32, "Malformed Stripe"),
        ("stripe", "Stripe-Signature", f"t={int(time.time())},v1=short", "a v1 is not 64 hex"),
        ("standard", "webhook-signature", "v1", "Malformed webhook-signature"),
        ("standard", "webhook-timestamp", "soon", "Malformed webhook-timestamp"),
        ("standard", "webhook-signature", "v1,not base64!", "Malformed webhook-signature"),
        ("hmac", "X-Signature", "not hex", "Malformed X-Signature"),
        ("hmac", "X-Timestamp", "2026-11-24T12:00:00Z", "Malformed X-Timestamp"),
    ],
)
def test_malformed_header_is_rejected(sender, scheme, header, value, reason):
    case = BY_SCHEME[scheme]
    source = _source(case)
    headers = {**case.sign(source.secret), header: value}

    response = _post(sender, case.slug, case.raw, headers)

    _assert_rejected(response, source, reason)


def test_non_utf8_body_is_rejected_by_the_standard_scheme(sender):
    case = BY_SCHEME["standard"]
    source = _source(case)
    headers = case.sign(source.secret)

    response = _post(sender, case.slug, b"\xff\xfe{}", headers)

    _assert_rejected(response, source, "not UTF-8")


@pytest.mark.django_db(transaction=True)
def test_concurrent_rejections_are_all_counted():
    case = BY_SCHEME["github"]
    source = _source(case)
    headers = case.sign("not the secret")
    statuses: list[int] = []
    start = threading.Barrier(8)

    def forge() -> None:
        try:
            start.wait()
            statuses.append(_post(Client(), case.slug, case.raw, headers).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=forge) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [401] * 8
    source.refresh_from_db()
    assert source.rejected_count == 8
    assert Event.objects.count() == 0


# --- replays --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_redelivery_returns_the_original_event_and_stores_nothing(sender, make_subscriber, case):
    source = _source(case)
    make_subscriber(event_types=["*"])
    first = _post(sender, case.slug, case.raw, case.sign(source.secret))
    stored = _stored()

    # The provider redelivers: the same delivery id, signed again.
    again = _post(sender, case.slug, case.raw, case.sign(source.secret))

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["delivery_count"] == 1
    assert _stored() == stored == (1, 1, 1)


def test_same_delivery_id_from_another_source_is_a_different_event(sender):
    case = BY_SCHEME["github"]
    one, two = _source(case), _source(case, slug="github-enterprise")

    first = _post(sender, "github", case.raw, case.sign(one.secret))
    second = _post(sender, "github-enterprise", case.raw, case.sign(two.secret))

    assert (first.status_code, second.status_code) == (202, 202)
    assert second.json()["event_type"] == "github-enterprise.issues.opened"


@pytest.mark.django_db(transaction=True)
def test_racing_redeliveries_store_one_event():
    """The second insert waits on the first's uncommitted row, fails, and finds the winner."""
    source = _source(BY_SCHEME["github"])
    inserted, release = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def receive(name: str, hold: bool) -> None:
        try:
            with transaction.atomic():
                results[name] = event_receive(
                    source=source, event_type="github.push", payload={}, delivery_id="same"
                )
                if hold:
                    inserted.set()
                    release.wait(10)
        except Exception as exc:  # reported below: a thread's exception would be lost
            results[name] = exc
        finally:
            connection.close()

    first = threading.Thread(target=receive, args=("first", True))
    first.start()
    assert inserted.wait(10)
    second = threading.Thread(target=receive, args=("second", False))
    second.start()
    time.sleep(0.5)  # the second is now blocked behind the first's uncommitted insert
    release.set()
    first.join()
    second.join()

    assert results["first"].created, results
    assert not results["second"].created, results
    assert results["second"].event.pk == results["first"].event.pk
    assert Event.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_redeliveries_over_http_answer_one_202_and_store_one_event():
    case = BY_SCHEME["stripe"]
    source = _source(case)
    headers = case.sign(source.secret)
    answers: list[tuple[int, str]] = []
    start = threading.Barrier(6)

    def post() -> None:
        try:
            start.wait()
            response = _post(Client(), case.slug, case.raw, headers)
            answers.append((response.status_code, response.json()["id"]))
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(status for status, _ in answers) == [200] * 5 + [202]
    assert len({event_id for _, event_id in answers}) == 1
    assert Event.objects.count() == 1


# --- rotation -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_previous_secret_is_accepted_during_rotation_and_refused_after(sender, case):
    source = _source(case)
    old = source.secret
    source_rotate_secret(source=source, now=timezone.now(), secret=_another_secret(case))
    assert source.secret != old and source.previous_secret == old

    during = _post(sender, case.slug, case.raw, case.sign(old))
    assert during.status_code == 202, during.content

    Source.objects.filter(pk=source.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    body = json.dumps({**case.body, "n": 2}).encode()
    after = _post(sender, case.slug, body, case.sign(old, body))
    assert after.status_code == 401
    current = _post(sender, case.slug, body, case.sign(source.secret, body))
    assert current.status_code in (200, 202), current.content


def test_rotation_refusing_the_old_secret_takes_effect_at_once(sender):
    case = BY_SCHEME["github"]
    source = _source(case)
    old = source.secret

    source_rotate_secret(source=source, now=timezone.now(), keep_previous=False)

    assert _post(sender, "github", case.raw, case.sign(old)).status_code == 401


# --- other refusals -------------------------------------------------------------------------------


def test_unknown_source_is_404(sender):
    case = BY_SCHEME["github"]

    response = _post(sender, "nobody", case.raw, case.sign("x"))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_inactive_source_is_404_and_counts_nothing(sender):
    case = BY_SCHEME["github"]
    source = _source(case, is_active=False)

    response = _post(sender, "github", case.raw, case.sign(source.secret))

    assert response.status_code == 404
    source.refresh_from_db()
    assert source.rejected_count == 0
    assert _stored() == (0, 0, 0)


def test_slug_that_cannot_exist_is_a_json_404(sender):
    response = _post(sender, "Bad.Slug", b"{}", {})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_body_over_the_limit_is_413_before_verification(sender, settings):
    settings.HERALD_MAX_PAYLOAD_BYTES = 200
    case = BY_SCHEME["github"]
    source = _source(case)
    body = json.dumps({"action": "opened", "pad": "x" * 300}).encode()

    response = _post(sender, "github", body, github_headers(source.secret, body))

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert _stored() == (0, 0, 0)
    source.refresh_from_db()
    assert source.rejected_count == 0


def test_body_at_the_limit_is_accepted(sender, settings):
    case = BY_SCHEME["github"]
    source = _source(case)
    body = json.dumps({"action": "opened", "pad": ""}).encode()
    body = body.replace(b'""', b'"' + b"x" * (200 - len(body)) + b'"')
    assert len(body) == 200
    settings.HERALD_MAX_PAYLOAD_BYTES = 200

    response = _post(sender, "github", body, github_headers(source.secret, body))

    assert response.status_code == 202


def _signed_github(sender, body: bytes, **options):
    source = Source.objects.filter(slug="github").first() or _source(BY_SCHEME["github"])
    return _post(sender, "github", body, github_headers(source.secret, body, **options))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"this is not json", None),
        (b"", None),
        (b'{"action": NaN}', None),
        (b'[{"action": "opened"}]', "body"),
        (b'{"note": "nul \\u0000 inside"}', "body"),
    ],
    ids=["text", "empty", "nan", "array", "nul"],
)
def test_signed_body_that_is_not_a_json_object_is_400(sender, body, field):
    response = _signed_github(sender, body)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    if field:
        assert field in error["fields"]
    else:
        assert error["code"] == "parse_error"
    assert _stored() == (0, 0, 0)


def test_github_request_without_event_header_is_400_naming_it(sender):
    case = BY_SCHEME["github"]
    source = _source(case)
    headers = {k: v for k, v in case.sign(source.secret).items() if k != "X-GitHub-Event"}

    response = _post(sender, "github", case.raw, headers)

    assert response.status_code == 400
    assert "X-GitHub-Event" in response.json()["error"]["fields"]


@pytest.mark.parametrize(
    ("scheme", "body", "field"),
    [
        ("stripe", {"id": "evt_1", "data": {}}, "type"),
        ("stripe", {"id": "evt_1", "type": "payment intent/ok"}, "type"),
        ("stripe", {"id": 42, "type": "charge.succeeded"}, "id"),
        ("standard", {"type": ["not", "a", "string"]}, "type"),
        ("hmac", {"event": "order.created"}, "event.name"),
    ],
)
def test_event_type_or_delivery_id_that_cannot_be_read_is_400_naming_it(
    sender, scheme, body, field
):
    case = BY_SCHEME[scheme]
    source = _source(case)
    raw = json.dumps(body).encode()

    response = _post(sender, case.slug, raw, case.sign(source.secret, raw))

    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert _stored() == (0, 0, 0)


def test_github_secret_is_used_as_given_bytes(sender):
    """GitHub keys the HMAC with the secret string's bytes, whatever they look like."""
    case = BY_SCHEME["github"]
    _source(case, secret="whsec_looks-like-base64-but-is-not")
    body = case.raw

    response = _post(
        sender,
        "github",
        body,
        {
            "X-Hub-Signature-256": "sha256=" + hex_hmac("whsec_looks-like-base64-but-is-not", body),
            "X-GitHub-Event": "issues",
        },
    )

    assert response.status_code == 202
