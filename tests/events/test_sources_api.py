"""/api/v1/sources: create (secret generated or pasted, shown once), read, change, rotate."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from events import sources_api
from events.models import Source
from events.sources import source_create, source_record_rejection
from events.sources_api import SourceViewSet
from subscribers.secrets import is_valid_secret
from tests.events.inbound_signing import CASES, github_headers

pytestmark = pytest.mark.django_db

URL = "/api/v1/sources"
GITHUB = {"slug": "github", "name": "GitHub org", "scheme": "github"}


def _assert_invalid(response, field: str) -> None:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["fields"], error


def _ingest_github(secret: str, body: bytes = b'{"zen": "Keep it logically awesome."}'):
    return Client().post(
        "/api/v1/ingest/github",
        data=body,
        content_type="application/json",
        headers=github_headers(secret, body, event="ping", delivery=str(timezone.now())),
    )


def test_sources_need_an_api_key():
    response = APIClient().get(URL)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize(
    ("scheme", "looks_right"),
    [
        ("github", lambda s: re.fullmatch(r"[0-9a-f]{64}", s)),
        ("hmac", lambda s: re.fullmatch(r"[0-9a-f]{64}", s)),
        ("standard", is_valid_secret),
    ],
)
def test_create_without_secret_generates_one_and_returns_it_once(api, scheme, looks_right):
    response = api.post(URL, {"slug": "src", "name": "Source", "scheme": scheme}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert looks_right(body["secret"])
    assert body["ingest_url"] == "http://testserver/api/v1/ingest/src"
    assert body["is_active"] is True
    assert Source.objects.get(pk=body["id"]).secret == body["secret"]

    assert "secret" not in api.get(f"{URL}/{body['id']}").json()
    assert "secret" not in api.get(URL).json()["results"][0]
    assert "secret" not in api.patch(f"{URL}/{body['id']}", {"name": "x"}, format="json").json()


def test_a_stripe_source_needs_the_secret_stripe_chose(api):
    response = api.post(URL, {"slug": "src", "name": "S", "scheme": "stripe"}, format="json")

    assert response.status_code == 400
    assert "Required for Stripe" in response.json()["error"]["fields"]["secret"][0]
    assert not Source.objects.exists()


@pytest.mark.parametrize("scheme", ["github", "hmac"])
def test_a_pasted_secret_anyone_could_guess_is_refused(api, scheme):
    body = {"slug": "src", "name": "S", "scheme": scheme, "secret": "a"}

    response = api.post(URL, body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"]["secret"] == [
        "At least 16 characters; leave it out to have one generated."
    ]


def test_created_source_verifies_requests_signed_with_its_secret(api):
    secret = api.post(URL, GITHUB, format="json").json()["secret"]

    assert _ingest_github(secret).status_code == 202
    assert _ingest_github("a guess").status_code == 401


def test_create_with_a_pasted_secret_keeps_it(api):
    response = api.post(
        URL, {**GITHUB, "scheme": "stripe", "secret": "whsec_from_the_dashboard"}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["secret"] == "whsec_from_the_dashboard"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**GITHUB, "slug": "GitHub"}, "slug"),
        ({**GITHUB, "slug": "git.hub"}, "slug"),
        ({**GITHUB, "slug": ""}, "slug"),
        ({**GITHUB, "slug": "x" * 51}, "slug"),
        ({**GITHUB, "scheme": "svix"}, "scheme"),
        ({"slug": "github", "scheme": "github"}, "name"),
        ({**GITHUB, "scheme": "standard", "secret": "not-whsec"}, "secret"),
        ({**GITHUB, "scheme": "standard", "secret": "whsec_c2hvcnQ="}, "secret"),
        ({**GITHUB, "scheme": "stripe", "secret": "sk_live_123"}, "secret"),
        ({**GITHUB, "secret": "line\nbreak"}, "secret"),
        ({**GITHUB, "secret": ""}, "secret"),
        ({**GITHUB, "secret": "x" * 256}, "secret"),
        ({**GITHUB, "scheme": "hmac", "event_type_field": "a..b"}, "event_type_field"),
    ],
)
def test_create_refuses_bad_fields_naming_them(api, payload, field):
    _assert_invalid(api.post(URL, payload, format="json"), field)
    assert not Source.objects.exists()


def test_a_taken_slug_is_a_409_naming_it(api):
    other = api.post(URL, {**GITHUB, "slug": "gh2"}, format="json").json()
    api.post(URL, GITHUB, format="json")

    created = api.post(URL, GITHUB, format="json")
    renamed = api.patch(f"{URL}/{other['id']}", {"slug": "github"}, format="json")

    for response in (created, renamed):
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "conflict"
        assert "already exists" in response.json()["error"]["fields"]["slug"][0]


def test_a_slug_taken_after_validation_is_still_a_409_naming_it(api, monkeypatch):
    other = source_create(**{**GITHUB, "slug": "gh2"})
    validated = sources_api.validate

    def validate_then_another_request_takes_the_slug(serializer) -> None:
        validated(serializer)
        source_create(**{**GITHUB, "slug": serializer.validated_data["slug"]})

    monkeypatch.setattr(sources_api, "validate", validate_then_another_request_takes_the_slug)

    created = api.post(URL, {**GITHUB, "slug": "new"}, format="json")
    renamed = api.patch(f"{URL}/{other.pk}", {"slug": "newer"}, format="json")

    for response in (created, renamed):
        assert response.status_code == 409, response.content
        assert response.json()["error"]["code"] == "conflict"
        assert response.json()["error"]["fields"]["slug"] == [
            "source with this slug already exists."
        ]
    assert Source.objects.get(pk=other.pk).slug == "gh2"


def test_patch_changes_name_slug_and_activity(api):
    source = source_create(**GITHUB)

    response = api.patch(
        f"{URL}/{source.pk}",
        {"name": "GitHub (main org)", "slug": "gh", "is_active": False},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["ingest_url"].endswith("/api/v1/ingest/gh")
    source.refresh_from_db()
    assert (source.name, source.slug, source.is_active) == ("GitHub (main org)", "gh", False)


def test_patch_of_a_source_deleted_meanwhile_is_404_and_does_not_bring_it_back(
    api, between_lookup_and_write
):
    source = source_create(**GITHUB)
    between_lookup_and_write(
        SourceViewSet, lambda found: Source.objects.filter(pk=found.pk).delete()
    )

    emptied = api.patch(f"{URL}/{source.pk}", {}, format="json")
    renamed = api.patch(f"{URL}/{source.pk}", {"name": "renamed"}, format="json")
    rotated = api.post(f"{URL}/{source.pk}/rotate-secret")

    for response in (emptied, renamed, rotated):
        assert response.status_code == 404, response.content
        assert response.json()["error"]["code"] == "not_found"
    assert not Source.objects.exists()


def test_patch_keeps_the_rejections_counted_meanwhile(api, between_lookup_and_write):
    source = source_create(**GITHUB)
    between_lookup_and_write(
        SourceViewSet,
        lambda found: source_record_rejection(
            source=found, reason="X-Hub-Signature-256 does not match the body.", now=timezone.now()
        ),
    )

    response = api.patch(f"{URL}/{source.pk}", {"name": "renamed"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["rejected_count"] == 1
    source.refresh_from_db()
    assert (source.name, source.rejected_count) == ("renamed", 1)


def test_patch_refuses_a_scheme_change_and_a_secret(api):
    source = source_create(**GITHUB)

    _assert_invalid(api.patch(f"{URL}/{source.pk}", {"scheme": "hmac"}, format="json"), "scheme")
    _assert_invalid(api.patch(f"{URL}/{source.pk}", {"secret": "new"}, format="json"), "secret")
    source.refresh_from_db()
    assert source.scheme == "github"


def test_rotate_secret_returns_the_new_one_and_keeps_the_old_for_the_grace(api, settings):
    settings.HERALD_SOURCE_ROTATION_HOURS = 2
    source = source_create(**GITHUB)
    old = source.secret

    response = api.post(f"{URL}/{source.pk}/rotate-secret")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["secret"] != old
    expires = Source.objects.get(pk=source.pk).previous_secret_expires_at
    assert abs((expires - timezone.now()).total_seconds() - 7200) < 60
    assert _ingest_github(old).status_code == 202
    assert _ingest_github(body["secret"]).status_code == 202


def test_rotate_secret_to_a_pasted_one_refusing_the_old_at_once(api):
    source = source_create(**GITHUB)
    old = source.secret

    response = api.post(
        f"{URL}/{source.pk}/rotate-secret",
        {"secret": "pasted-by-the-operator", "keep_previous": False},
        format="json",
    )

    assert response.json()["secret"] == "pasted-by-the-operator"
    assert _ingest_github(old).status_code == 401
    assert _ingest_github("pasted-by-the-operator").status_code == 202


def test_rotate_secret_refuses_a_secret_the_scheme_cannot_use(api):
    source = source_create(slug="acme", name="Acme", scheme="standard")

    response = api.post(f"{URL}/{source.pk}/rotate-secret", {"secret": "plain"}, format="json")

    _assert_invalid(response, "secret")


def test_delete_without_events_removes_the_source(api):
    source = source_create(**GITHUB)

    assert api.delete(f"{URL}/{source.pk}").status_code == 204
    assert not Source.objects.exists()


def test_delete_with_events_is_a_conflict_and_keeps_it(api):
    source = source_create(**GITHUB)
    assert _ingest_github(source.secret).status_code == 202

    response = api.delete(f"{URL}/{source.pk}")

    assert response.status_code == 409
    assert "is_active" in response.json()["error"]["message"]
    assert Source.objects.filter(pk=source.pk).exists()


def test_list_filters_by_scheme_and_activity(api):
    for case in CASES:
        source_create(slug=case.slug, name=case.slug, scheme=case.scheme, **case.source_fields)
    Source.objects.filter(slug="shop").update(is_active=False)

    stripe = api.get(URL, {"scheme": "stripe"}).json()["results"]
    inactive = api.get(URL, {"is_active": "false"}).json()["results"]

    assert [s["slug"] for s in stripe] == ["stripe"]
    assert [s["slug"] for s in inactive] == ["shop"]
    _assert_invalid(api.get(URL, {"scheme": "svix"}), "scheme")


def test_rejections_are_visible_on_the_source(api):
    source = source_create(**GITHUB)
    _ingest_github("a guess")

    body = api.get(f"{URL}/{source.pk}").json()

    assert body["rejected_count"] == 1
    assert body["last_rejection_reason"] == "Signature does not match."
    assert body["last_rejected_at"]


def test_event_detail_names_its_source_and_delivery_id(api):
    source = source_create(**GITHUB)
    event_id = _ingest_github(source.secret).json()["id"]

    body = api.get(f"/api/v1/events/{event_id}").json()

    assert body["source"] == "github"
    assert body["source_delivery_id"]


def test_openapi_schema_describes_ingest_and_sources(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()

    ingest = schema["paths"]["/api/v1/ingest/{slug}"]["post"]
    assert set(ingest["responses"]) >= {"200", "202", "400", "401", "404", "413"}
    assert not ingest.get("security")
    assert "/api/v1/sources/{id}/rotate-secret" in schema["paths"]


def test_an_unknown_scheme_is_a_400_listing_the_schemes(api):
    response = api.post(URL, {"slug": "src", "name": "S", "scheme": "nope"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"]["scheme"] == [
        '"nope" is not a scheme Herald verifies: use one of github, stripe, standard, hmac.'
    ]
