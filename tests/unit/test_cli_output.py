"""What the operator commands print: tables, parked-event descriptions, replay headers."""

import json
from datetime import UTC, datetime

import pytest

from concord_cli import dlq
from concord_cli.health import OK, interpret
from concord_cli.table import format_table

pytestmark = pytest.mark.unit


def test_table_columns_are_aligned_and_none_prints_as_dash():
    text = format_table(
        ["NAME", "STATE", "PID", "HEALTH"],
        [["referral", "RUNNING", 4242, "ok"], ["gateway", "FATAL", None, "unreachable"]],
    )
    assert text.splitlines() == [
        "NAME      STATE    PID   HEALTH",
        "referral  RUNNING  4242  ok",
        "gateway   FATAL    -     unreachable",
    ]


def test_table_with_no_rows_is_its_header():
    assert format_table(["A", "BB"], []) == "A  BB"


def test_health_reply_interpreted():
    assert interpret({"status": "ok", "database": "ok"}) == "ok"
    assert interpret({"status": "degraded"}) == "degraded"
    assert interpret(True) == OK


HEADERS = {
    "x-concord-reason": "IntegrityError: inbox",
    "x-concord-attempt": 5,
    "x-concord-failed-at": "2026-11-23T12:00:00+00:00",
    "x-concord-service": "case_management",
    "x-death": [{"count": 4}],
    "nameko.correlation_id": "c-1",
}


def test_parked_message_described_by_its_identifiers_never_its_payload():
    body = json.dumps(
        {"event_id": "e-1", "event_type": "referral.routed", "payload": {"urgency": "high"}}
    ).encode()
    parked = dlq.describe("case_management", body, HEADERS)
    assert parked == dlq.Parked(
        service="case_management",
        event_id="e-1",
        event_type="referral.routed",
        reason="IntegrityError: inbox",
        attempt=5,
        failed_at="2026-11-23T12:00:00+00:00",
    )
    assert "payload" not in dlq.as_dict(parked)


def test_unreadable_body_falls_back_to_the_message_id():
    parked = dlq.describe("referral", b"\xff not json", {}, {"message_id": "m-9"})
    assert (parked.event_id, parked.event_type, parked.attempt) == ("m-9", None, None)


def test_replayed_copy_forgets_the_failure_and_the_attempt_count():
    now = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    headers = dlq.replay_headers(HEADERS, now=now)
    assert headers == {
        "x-concord-service": "case_management",
        "nameko.correlation_id": "c-1",
        "x-concord-replayed-at": "2026-11-23T13:00:00+00:00",
    }
    assert "x-concord-attempt" in HEADERS  # the original is left alone


def test_a_parked_event_knows_its_lane_from_the_header_or_its_urgent_retries():
    assert dlq.describe("referral", b"{}", {"x-concord-lane": "urgent"}).lane == "urgent"
    assert dlq.describe("referral", b"{}", {"x-concord-lane": b"main"}).lane == "main"
    # Parked before the header existed: its trips through the urgent retry queue tell.
    through_urgent = {"x-death": [{"queue": b"concord.referral.events.urgent.retry"}]}
    assert dlq.describe("referral", b"{}", through_urgent).lane == "urgent"
    assert dlq.describe("referral", b"{}", HEADERS).lane == "main"
