"""The operators' console in a real browser: log in, watch the dashboard live, replay from the
admin."""

from __future__ import annotations

import pytest

from deadletters.models import DeadLetter
from deliveries.models import Delivery
from events.models import Event
from events.services import event_create
from subscribers.services import subscriber_create
from tests.browser.conftest import log_in, snap
from tests.jobs import run_due_jobs

pytestmark = pytest.mark.browser


def test_operator_logs_in_and_sees_the_cards(page, operator, busy_herald):
    log_in(page, operator, "/dashboard/")

    for card in [
        "events_per_minute",
        "deliveries_per_minute",
        "success_rate",
        "latency",
        "queue_depth",
        "retrying",
        "dead_letters",
        "open_circuits",
    ]:
        assert page.locator(f'[data-card="{card}"] .value').is_visible()
    # The 40 published, plus the operational events (herald.*) the flaky and dead receivers caused.
    events = Event.objects.count()
    assert events > 40
    assert page.locator('[data-card="events_per_minute"] .value').inner_text() == str(events)
    dead_letters = DeadLetter.objects.filter(resolved_at=None).count()
    assert dead_letters > 0
    assert page.locator('[data-card="dead_letters"] .value').inner_text() == str(dead_letters)
    assert page.locator("#feed tbody tr").count() == 15
    assert page.locator("#health tbody tr").count() == 4
    page.wait_for_function("document.getElementById('live-status').textContent.includes('updated')")
    snap(page, "dashboard", full_page=True)

    page.click('[data-card="dead_letters"]')

    page.wait_for_url("**/admin/deadletters/deadletter/?state=unresolved")
    assert page.locator("#result_list tbody tr").count() == dead_letters


def test_a_new_delivery_appears_in_the_feed_without_a_reload(page, operator, receiver):
    subscriber_create(name="shipping", endpoint_url=receiver.url(), event_types=["*"])
    log_in(page, operator, "/dashboard/")
    page.evaluate("window.notReloaded = true")
    assert page.locator("#feed tbody tr[data-delivery]").count() == 0

    event = event_create(event_type="shipment.sent", payload={"parcel": 7}).event
    run_due_jobs()
    delivery = Delivery.objects.get(event=event)

    row = page.locator(f'#feed tr[data-delivery="{delivery.pk}"]')
    row.wait_for()
    assert "shipment.sent" in row.inner_text() and "200" in row.inner_text()
    assert page.evaluate("window.notReloaded") is True
    assert page.locator('[data-card="deliveries_per_minute"] .value').inner_text() == "1"


def test_operator_replays_a_dead_letter_from_the_admin(
    page, operator, busy_herald, make_dead_letter
):
    for event_type in ("invoice.paid", "order.refunded"):
        make_dead_letter(event_type=event_type)
    letter = make_dead_letter(event_type="order.created")
    log_in(page, operator, "/admin/deadletters/deadletter/?state=unresolved")

    page.check(f'input[name="_selected_action"][value="{letter.pk}"]')
    page.select_option('select[name="action"]', "replay_dead_letters")
    page.click('button[name="index"]')

    assert page.locator(".messagelist").inner_text().strip() == "Replayed 1 dead letter."
    letter.refresh_from_db()
    assert letter.resolution == DeadLetter.Resolution.REPLAYED
    assert Delivery.objects.get(pk=letter.delivery_id).status == Delivery.Status.PENDING
    assert page.locator(f'input[name="_selected_action"][value="{letter.pk}"]').count() == 0
    snap(page, "admin-dead-letters")


def test_deliveries_changelist_for_the_readme(page, operator, busy_herald):
    log_in(page, operator, "/admin/deliveries/delivery/")

    assert page.locator("#result_list tbody tr").count() == busy_herald.count()
    assert page.locator("#changelist-filter").is_visible()
    snap(page, "admin-deliveries")
