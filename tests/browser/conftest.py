"""A real headless browser: Playwright for Python driving Debian's chromium.

The browser must be Debian's (`apt-get install chromium`, which .ci/run does): Playwright's own
browser downloads are not used. Without it the tests are skipped on a developer's machine, and
fail in CI (CI=true), where a skipped browser test would hide a broken console.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from deliveries.models import Delivery
from events.services import EventInput, events_create
from subscribers.services import subscriber_create
from tests.jobs import run_due_jobs
from tests.receiver import Reply

CHROMIUM = "/usr/bin/chromium"
# Set to a directory (docs/screenshots) to save screenshots of what the tests see.
SCREENSHOTS = os.environ.get("HERALD_SCREENSHOTS")


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must run the browser tests (.ci/run installs chromium)")
    pytest.skip(reason)


@pytest.fixture
def page(monkeypatch, live_server, settings):
    """A fresh browser page, with the dashboard refreshing every half second."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -r requirements/dev.txt)")
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    settings.HERALD_DASHBOARD_REFRESH_SECONDS = 0.5
    # Playwright's sync API keeps an asyncio loop on this thread, which makes Django refuse ORM
    # calls here as if they came from async code; the test's own calls are plain sync code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        context = browser.new_context(
            base_url=live_server.url, viewport={"width": 1440, "height": 900}
        )
        context.set_default_timeout(15_000)
        # The admin's app list folded away, as an operator with a narrow screen keeps it.
        context.add_init_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
        yield context.new_page()
        context.close()
        browser.close()


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_superuser("operator", "op@example.com", "s3cret-pw")


def log_in(page, operator, next_url: str) -> None:
    page.goto(f"/admin/login/?next={next_url}")
    page.fill("#id_username", operator.username)
    page.fill("#id_password", "s3cret-pw")
    page.click("input[type=submit]")
    page.wait_for_url(f"**{next_url}")


def snap(page, name: str, *, full_page: bool = False) -> None:
    """Save a screenshot for the README when HERALD_SCREENSHOTS names a directory."""
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=full_page)


@pytest.fixture
def busy_herald(receiver, settings):
    """Real traffic, like the demo's: a healthy, a flaky and a dead receiver, and forty events."""
    settings.HERALD_BREAKER_THRESHOLD = 5
    chance = random.Random(6)
    receiver.default("/healthy", Reply(status=200, delay=0.01))
    receiver.then("/flaky", *(Reply(status=chance.choice([200, 200, 500])) for _ in range(40)))
    receiver.default("/dead", Reply(status=410, body=b'{"error": "gone"}'))
    for name in ("healthy", "flaky", "dead"):
        subscriber_create(
            name=f"demo: {name}", endpoint_url=receiver.url(f"/{name}"), event_types=["order.*"]
        )
    subscriber_create(
        name="billing", endpoint_url=receiver.url("/healthy"), event_types=["invoice.*"]
    )
    events_create(
        inputs=[
            EventInput(
                event_type=chance.choice(["order.created", "order.paid", "invoice.paid"]),
                payload={"order_id": 1000 + n, "amount_cents": chance.randint(500, 9000)},
            )
            for n in range(40)
        ]
    )
    run_due_jobs()
    return Delivery.objects.all()
