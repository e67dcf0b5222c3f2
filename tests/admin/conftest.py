from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.urls import reverse


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_superuser("operator", "op@example.com", "pw")


@pytest.fixture
def operator_client(client, operator):
    client.force_login(operator)
    return client


@pytest.fixture
def viewer_client(client, django_user_model):
    """Staff who may look at everything and change nothing."""
    user = django_user_model.objects.create_user("viewer", "viewer@example.com", "pw")
    user.is_staff = True
    user.save()
    user.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    client.force_login(user)
    return client


def run_action(client, model: str, action: str, objects, **extra):
    """POST an admin action to a changelist exactly as the action form does; follow the redirect."""
    app_label, model_name = model.split(".")
    return client.post(
        reverse(f"admin:{app_label}_{model_name}_changelist"),
        {"action": action, "_selected_action": [str(obj.pk) for obj in objects], **extra},
        follow=True,
    )


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def logged(obj) -> list[str]:
    """The admin log's change messages for one object."""
    return list(
        LogEntry.objects.filter(object_id=str(obj.pk)).values_list("change_message", flat=True)
    )
