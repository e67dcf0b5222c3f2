"""Serializer fields that take JSON values of their own type only.

DRF coerces: a CharField takes 42 as "42", a BooleanField takes 0, "yes" and "off", a FloatField
takes "1.5". The schema promises a string, a boolean, a number; a client sending anything else
has a bug, and hearing so at once (400) beats having its 0 read as false.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.db import models
from rest_framework import serializers


class StrictCharField(serializers.CharField):
    """A string, kept as sent: trimming would make the schema's length limits lie."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictURLField(serializers.URLField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictFloatField(serializers.FloatField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        return super().to_internal_value(data)


# A serializer mixin: a body field the serializer does not take is a 400, not ignored. DRF drops
# unknown and read-only fields silently, so `{"rate_limt_per_second": 5}` would create a
# subscriber with no rate limit and say nothing. `field_messages` may say more about a field
# (where it can be changed instead). (Comments, not docstrings: the schema would show them.)
class KnownFieldsOnly:
    field_messages: dict[str, str] = {}

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            refused = sorted(set(data) - writable, key=str)
            if refused:
                raise serializers.ValidationError(
                    {
                        name: [
                            self.field_messages.get(name)
                            or (
                                "Read-only: it cannot be set."
                                if name in self.fields
                                else "Unknown field."
                            )
                        ]
                        for name in refused
                    }
                )
        return super().to_internal_value(data)


# A ModelSerializer that takes only its own fields, each only of its own JSON type.
class StrictModelSerializer(KnownFieldsOnly, serializers.ModelSerializer):
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
        models.SlugField: StrictCharField,
        models.URLField: StrictURLField,
        models.BooleanField: StrictBooleanField,
        models.FloatField: StrictFloatField,
    }
