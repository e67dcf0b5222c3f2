"""config.db's hand-written SELECT: rows read back as the ORM would read them, on any backend."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from config.apikeys import api_key_create
from config.db import select_instances
from config.models import ApiKey


@pytest.mark.django_db
def test_select_instances_reads_every_field_as_the_orm_does():
    issued = api_key_create(name="billing", scopes=["read", "events:publish"]).api_key
    used = timezone.now() - timedelta(minutes=5)
    ApiKey.objects.filter(pk=issued.pk).update(last_used_at=used)
    api_key_create(name="other")

    (found,) = select_instances(ApiKey, where="name = %s", params=["billing"])

    expected = ApiKey.objects.get(pk=issued.pk)
    for field in ApiKey._meta.concrete_fields:
        assert getattr(found, field.attname) == getattr(expected, field.attname), field.name
    assert found.scopes == ["read", "events:publish"]
    assert found.last_used_at == used and found.last_used_at.tzinfo is not None
    assert not found._state.adding  # saving it updates the row
    found.name = "billing-v2"
    found.save(update_fields=["name"])
    assert ApiKey.objects.get(pk=issued.pk).name == "billing-v2"


@pytest.mark.django_db
def test_select_instances_finds_nothing_without_a_match():
    assert select_instances(ApiKey, where="prefix = %s", params=["nope"]) == []
