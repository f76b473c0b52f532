"""RabbitMQ stops between submission and acceptance and comes back: the flow completes,
nothing lost, nothing applied twice."""

import json
import time

import pytest
from kombu import Connection, Queue

from concord_contracts.topology import MONITOR_QUEUE
from tests.conftest import AMQP_URI
from tests.e2e.test_first_flow import wait_for_pipeline
from tests.fault.chaos import restart_rabbitmq
from tests.synthetic import make_referral

pytestmark = [pytest.mark.e2e, pytest.mark.fault]


def accept(http, cid, token, timeout=60):
    """Accept, retrying while services reconnect after the outage (503 meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = http.request("POST", f"/api/v1/intake/{cid}/accept", token=token)
        if status in (200, 201) or time.monotonic() > deadline:
            return status, body
        assert status in (502, 503), body
        time.sleep(1)


def monitored(cid):
    """Distinct events per type for one coordination id, from the bus's bounded tap."""
    seen: dict[str, set] = {}
    with Connection(AMQP_URI) as conn:
        queue = Queue(MONITOR_QUEUE, no_declare=True)(conn.channel())
        held = []
        while (message := queue.get()) is not None:
            held.append(message)
            body = json.loads(message.body)
            # The tap holds every event in this virtual host, other tests' poison included.
            if isinstance(body, dict) and body.get("coordination_id") == cid:
                seen.setdefault(body["event_type"], set()).add(body["event_id"])
        for message in held:
            message.requeue()
    return seen


def test_broker_restart_between_submission_and_acceptance(running_system):
    system, http = running_system, running_system.http
    social, police, coordinator = (
        http.token("social"),
        http.token("police"),
        http.token("coordinator"),
    )
    receipt = system.submit_referral(make_referral(categories=["grooming"], urgency="normal"))
    cid = receipt["coordination_id"]

    restart_rabbitmq(down_seconds=3)  # the relays and consumers notice and start retrying
    system.wait_healthy(timeout=120)

    status, case = accept(http, cid, social)
    assert status in (200, 201), case
    status, investigation = accept(http, cid, police)
    assert status in (200, 201), investigation

    # A second outage while the partners' events are in flight.
    restart_rabbitmq(down_seconds=0)
    system.wait_healthy(timeout=120)

    row = wait_for_pipeline(
        system,
        cid,
        coordinator,
        lambda r: (
            r["agencies"]["social_services"]["status"] == "case_opened"
            and r["agencies"]["justice"]["status"] == "investigation_opened"
        ),
        timeout=90,
    )
    assert row["stage"] == "in_care"

    # Nothing duplicated: one case, one investigation, each announced by one event.
    status, again = accept(http, cid, social)
    assert again["case_id"] == case["case_id"]
    status, again = accept(http, cid, police)
    assert again["investigation_id"] == investigation["investigation_id"]
    seen = monitored(cid)
    for event_type in (
        "referral.received",
        "referral.routed",
        "case.opened",
        "investigation.opened",
    ):
        assert len(seen.get(event_type, ())) == 1, (event_type, seen)

    # Nothing stuck: every service's outbox drains.
    deadline = time.monotonic() + 30
    while True:
        services = system.wait_healthy()["services"]
        pending = {name: s["outbox_pending"] for name, s in services.items()}
        if all(count == 0 for count in pending.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert set(pending) >= {"referral", "case_management", "justice_liaison", "cross_border"}
    assert all(count == 0 for count in pending.values()), pending
