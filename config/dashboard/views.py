"""Thin views: the dashboard page, its live fragment (polled by the page), and the demo button."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from config.dashboard.selectors import dashboard_cards, latest_attempts, subscriber_health
from config.demo import demo_run
from subscribers.urls_safety import UnsafeEndpoint

DEMO_EVENTS = 30


def _live_context() -> dict:
    now = timezone.now()
    return {
        "now": now,
        "cards": dashboard_cards(now=now),
        "attempts": latest_attempts(),
        "subscribers": subscriber_health(now=now),
    }


def _can_run_demo(request: HttpRequest) -> bool:
    # The demo receiver listens on this machine: only where private targets are allowed.
    return settings.HERALD_ALLOW_PRIVATE_TARGETS and request.user.has_perm(
        "subscribers.add_subscriber"
    )


@staff_member_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "dashboard/index.html",
        {
            **admin.site.each_context(request),
            "title": "Dashboard",
            "is_nav_sidebar_enabled": False,  # the page needs the width
            **_live_context(),
            "refresh_ms": int(settings.HERALD_DASHBOARD_REFRESH_SECONDS * 1000),
            "can_run_demo": _can_run_demo(request),
            "demo_receiver_url": settings.HERALD_DEMO_RECEIVER_URL,
        },
    )


@staff_member_required
@require_GET
def dashboard_live(request: HttpRequest) -> HttpResponse:
    """The cards, feed and health table alone, for the page to swap in without reloading."""
    return render(request, "dashboard/_live.html", _live_context())


@staff_member_required
@require_POST
def dashboard_demo(request: HttpRequest) -> HttpResponse:
    if not _can_run_demo(request):
        raise PermissionDenied
    try:
        run = demo_run(
            receiver_url=settings.HERALD_DEMO_RECEIVER_URL, events=DEMO_EVENTS, now=timezone.now()
        )
    except UnsafeEndpoint as exc:
        messages.error(request, f"Demo not started: {exc}")
    else:
        messages.success(
            request,
            f"Demo started: {run.events} events, {run.deliveries} deliveries to "
            f"{len(run.subscribers)} demo subscribers at {settings.HERALD_DEMO_RECEIVER_URL}.",
        )
    return redirect("dashboard")
