"""The sources' admin: create (generated or pasted secret), rotate, see events and rejections."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from events.models import Source
from events.sources import source_create, source_rotate_secret
from tests.events.inbound_signing import github_headers

pytestmark = pytest.mark.django_db

ADD = reverse("admin:events_source_add")
CHANGELIST = reverse("admin:events_source_changelist")


@pytest.fixture
def operator_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("operator", "op@example.com", "pw")
    client.force_login(user)
    return client


def _rotate_url(source: Source) -> str:
    return reverse("admin:events_source_rotate_secret", args=[source.pk])


def _messages(response) -> str:
    return " ".join(str(message) for message in response.context["messages"])


def _ingest(source: Source, secret: str, delivery: str = "d-1"):
    body = b'{"action": "opened"}'
    return Client().post(
        f"/api/v1/ingest/{source.slug}",
        data=body,
        content_type="application/json",
        headers=github_headers(secret, body, delivery=delivery),
    )


def _add(operator_client, **fields):
    data = {
        "slug": "github",
        "name": "GitHub",
        "scheme": "github",
        "secret": "",
        "event_type_field": "type",
        "is_active": "on",
    }
    data.update(fields)
    return operator_client.post(ADD, data, follow=True)


def test_add_without_secret_generates_one_and_shows_it_once(operator_client):
    response = _add(operator_client)

    source = Source.objects.get(slug="github")
    assert len(source.secret) == 64
    assert source.secret in _messages(response)
    assert "not shown again" in _messages(response)
    assert LogEntry.objects.filter(object_id=str(source.pk), action_flag=ADDITION).exists()
    change_page = operator_client.get(reverse("admin:events_source_change", args=[source.pk]))
    assert source.secret not in change_page.content.decode()


def test_add_with_a_pasted_secret_keeps_it(operator_client):
    _add(operator_client, slug="stripe", scheme="stripe", secret="whsec_pasted_from_stripe")

    assert Source.objects.get(slug="stripe").secret == "whsec_pasted_from_stripe"


def test_add_refuses_a_secret_the_scheme_cannot_use(operator_client):
    response = _add(operator_client, scheme="standard", secret="not-a-whsec")

    assert response.status_code == 200
    assert "Standard Webhooks secrets look like" in response.content.decode()
    assert not Source.objects.exists()


def test_rotate_generates_a_new_secret_keeping_the_old_for_the_grace(operator_client):
    source = source_create(slug="github", name="GitHub", scheme="github")
    old = source.secret

    form = operator_client.get(_rotate_url(source))
    assert form.status_code == 200 and b"New secret" in form.content
    response = operator_client.post(_rotate_url(source), {"secret": ""}, follow=True)

    source.refresh_from_db()
    assert source.secret != old and source.previous_secret == old
    assert source.secret in _messages(response)
    assert response.redirect_chain[-1][0] == reverse("admin:events_source_change", args=[source.pk])
    entry = LogEntry.objects.get(object_id=str(source.pk), action_flag=CHANGE)
    assert "Rotated the secret" in entry.get_change_message()
    assert _ingest(source, old).status_code == 202
    assert _ingest(source, source.secret, delivery="d-2").status_code == 202


def test_rotate_to_a_pasted_secret_refusing_the_old_one(operator_client):
    source = source_create(slug="github", name="GitHub", scheme="github")
    old = source.secret

    operator_client.post(
        _rotate_url(source),
        {"secret": "operator-chosen-secret-1", "revoke_previous": "on"},
        follow=True,
    )

    source.refresh_from_db()
    assert source.secret == "operator-chosen-secret-1"
    assert _ingest(source, old).status_code == 401
    assert _ingest(source, "operator-chosen-secret-1").status_code == 202


def test_rotate_refuses_a_bad_secret_and_changes_nothing(operator_client):
    source = source_create(slug="acme", name="Acme", scheme="standard")
    old = source.secret

    response = operator_client.post(_rotate_url(source), {"secret": "plain"})

    assert response.status_code == 200
    assert "Standard Webhooks secrets look like" in response.content.decode()
    source.refresh_from_db()
    assert source.secret == old


def test_rotate_needs_the_change_permission(client, django_user_model):
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_source"))
    client.force_login(viewer)
    source = source_create(slug="github", name="GitHub", scheme="github")
    old = source.secret

    assert client.get(_rotate_url(source)).status_code == 403
    assert client.post(_rotate_url(source), {"secret": ""}).status_code == 403
    source.refresh_from_db()
    assert source.secret == old


def test_rotate_of_an_unknown_source_is_404(operator_client):
    url = reverse(
        "admin:events_source_rotate_secret", args=["00000000-0000-0000-0000-000000000000"]
    )

    assert operator_client.get(url).status_code == 404


def test_change_page_shows_rejections_recent_events_and_rotation(operator_client):
    source = source_create(slug="github", name="GitHub", scheme="github")
    event_id = _ingest(source, source.secret).json()["id"]
    _ingest(source, "a guess")

    page = operator_client.get(reverse("admin:events_source_change", args=[source.pk]))

    content = page.content.decode()
    assert page.status_code == 200
    assert "Signature does not match." in content
    assert reverse("admin:events_event_change", args=[event_id]) in content
    assert "github.issues.opened" in content
    assert _rotate_url(source) in content
    assert "/api/v1/ingest/github" in content
    assert source.secret not in content


def test_changelist_shows_rejection_counts_and_links_to_their_events(operator_client):
    source = source_create(slug="github", name="GitHub", scheme="github")
    _ingest(source, source.secret)
    for _ in range(3):
        _ingest(source, "a guess")

    page = operator_client.get(CHANGELIST)
    events = operator_client.get(
        reverse("admin:events_event_changelist"), {"source__id__exact": source.pk}
    )

    assert page.status_code == 200
    assert page.context["cl"].result_list[0].rejected_count == 3
    assert events.status_code == 200
    assert [e.source_id for e in events.context["cl"].result_list] == [source.pk]


def test_event_page_shows_its_source_and_delivery_id(operator_client):
    source = source_create(slug="github", name="GitHub", scheme="github")
    event_id = _ingest(source, source.secret, delivery="gh-delivery-77").json()["id"]

    page = operator_client.get(reverse("admin:events_event_change", args=[event_id]))

    assert "gh-delivery-77" in page.content.decode()


def test_previous_secret_expiry_is_shown_while_it_is_valid(operator_client):
    source = source_create(slug="github", name="GitHub", scheme="github")
    source_rotate_secret(source=source, now=timezone.now())

    page = operator_client.get(reverse("admin:events_source_change", args=[source.pk]))

    assert "the previous one is accepted until" in page.content.decode()
