"""The first real flow, over HTTP, with every service running as its own process and all
of it over RabbitMQ: submit, see it waiting, accept in two agencies, watch the pipeline."""

import json
import re
import time
from pathlib import Path

import pytest

from concord_contracts.events import read_event
from tests.observe import bus_tap
from tests.synthetic import make_referral

pytestmark = pytest.mark.e2e


def wait_for_pipeline(system, cid, token, predicate, timeout=30):
    deadline = time.monotonic() + timeout
    row = None
    while time.monotonic() < deadline:
        status, row = system.http.request("GET", f"/api/v1/pipeline/{cid}", token=token)
        assert status == 200, row
        if predicate(row):
            return row
        time.sleep(0.2)
    raise AssertionError(f"pipeline did not reach the expected state: {row}")


@pytest.fixture
def every_event():
    """Every event that crosses the bus while the test runs."""
    with bus_tap("#") as tap:
        yield tap


def test_referral_travels_to_coordinated_status(running_system, every_event):
    system, http = running_system, running_system.http
    referral = make_referral(categories=["sextortion", "grooming"], urgency="high")
    receipt = system.submit_referral(referral)
    cid = receipt["coordination_id"]
    assert sorted(receipt["routed_to"]) == ["justice", "social_services"]

    social, police, coordinator = (
        http.token("social"),
        http.token("police"),
        http.token("coordinator"),
    )

    # Each routed agency sees it waiting, scoped to its own agency.
    for token in (social, police):
        waiting = http.every_item("/api/v1/intake", token)
        assert cid in {item["coordination_id"] for item in waiting}
    status, _ = http.request("GET", "/api/v1/intake", token=coordinator)
    assert status == 403

    row = wait_for_pipeline(system, cid, coordinator, lambda r: r["stage"] == "routed")
    assert row["agencies"]["social_services"]["status"] == "pending_acceptance"
    assert row["agencies"]["justice"]["status"] == "pending_acceptance"

    # The social worker accepts: case_management pulls the details and opens a case.
    status, case = http.request("POST", f"/api/v1/intake/{cid}/accept", token=social)
    assert status in (200, 201), case
    assert case["coordination_id"] == cid
    row = wait_for_pipeline(
        system,
        cid,
        coordinator,
        lambda r: r["agencies"]["social_services"]["status"] == "case_opened",
    )
    assert row["agencies"]["justice"]["status"] == "pending_acceptance"
    assert row["stage"] == "in_care"

    # Accepting twice opens nothing twice.
    status, again = http.request("POST", f"/api/v1/intake/{cid}/accept", token=social)
    assert status in (200, 201) and again["case_id"] == case["case_id"]

    # The police liaison officer accepts: an investigation record is opened.
    status, investigation = http.request("POST", f"/api/v1/intake/{cid}/accept", token=police)
    assert status in (200, 201), investigation
    row = wait_for_pipeline(
        system,
        cid,
        coordinator,
        lambda r: r["agencies"]["justice"]["status"] == "investigation_opened",
    )
    assert set(row) >= {"coordination_id", "stage", "urgency", "agencies", "flags"}
    assert row["urgency"] == "high"

    # The coordinator's view holds no identity and no free text.
    text = json.dumps(row)
    assert referral["child"]["given_name"] not in text
    assert referral["summary"][:30] not in text

    # What crossed the bus: valid envelopes only, and nothing personal.
    events = every_event(cid)
    types = [e["event_type"] for e in events]
    for expected in ("referral.received", "referral.routed", "case.opened", "investigation.opened"):
        assert types.count(expected) == 1, types
    for event in events:
        read_event(event)
    assert_no_personal_data(events, referral)

    # ... nor in any service's log.
    logs = Path(system.environment["CONCORD_VAR_DIR"]) / "log"
    text = "\n".join(log.read_text(errors="replace") for log in logs.glob("*.log"))
    assert cid in text  # the logs do speak of this referral, by its id
    for needle in personal_needles(referral):
        assert needle not in text, f"personal data in a log line: {needle!r}"


def personal_needles(referral) -> list[str]:
    """Strings of the submitted referral that must never leave the referral service."""
    child, reporter = referral["child"], referral.get("reporter", {})
    contact = reporter.get("contact") or {}
    needles = [child.get("given_name"), child.get("family_name"), child.get("date_of_birth")]
    needles += [contact.get("name"), contact.get("phone"), contact.get("email")]
    needles += [w for w in re.findall(r"[A-Za-z]{6,}", referral["summary"])[:5]]
    return [str(n) for n in needles if n]


def assert_no_personal_data(events, referral):
    """Fails on anything that looks like personal data from the submitted referral."""
    text = json.dumps(events)
    for needle in personal_needles(referral):
        assert needle not in text, f"personal data on the bus: {needle!r}"
    payloads = json.dumps([e["payload"] for e in events])
    assert not re.search(r"\+\d{2}[\d ]{6,}", payloads), "something like a phone number"
    assert "@" not in payloads, "something like an e-mail address"


def test_only_agencies_it_was_routed_to_can_accept(running_system):
    http = running_system.http
    # Cyberstalking alone, with no child in immediate danger, is not routed to justice.
    receipt = running_system.submit_referral(
        make_referral(categories=["cyberstalking"], urgency="normal", channel="school")
    )
    cid = receipt["coordination_id"]
    assert receipt["routed_to"] == ["social_services"]
    status, body = http.request("POST", f"/api/v1/intake/{cid}/accept", token=http.token("police"))
    assert status == 403, body
    status, body = http.request(
        "POST", f"/api/v1/intake/{cid}/accept", token=http.token("coordinator")
    )
    assert status == 403, body


def test_bad_input_is_answered_with_the_field_and_nothing_is_stored(running_system):
    http = running_system.http
    intake = http.token("intake")
    referral = make_referral()
    referral["urgency"] = "whenever"
    referral["child"]["given_name"] = "x" * 5000
    status, body = http.request("POST", "/api/v1/referrals", referral, token=intake)
    assert status == 422, body
    assert {"urgency", "child"} <= set(body["error"]["fields"])
    status, body = http.request("POST", "/api/v1/referrals", raw=b"{not json", token=intake)
    assert status == 400
    status, body = http.request("POST", "/api/v1/referrals", raw=b"[" * 300_000, token=intake)
    assert status == 413
    status, body = http.request("POST", "/api/v1/referrals", make_referral())
    assert status == 401


def test_health_and_reference(running_system):
    http = running_system.http
    status, health = http.request("GET", "/healthz")
    assert status == 200
    assert {"referral", "case_management", "justice_liaison", "cross_border"} <= set(
        json.dumps(health) and health.get("services", health)
    )
    for name in ("channels", "categories", "urgencies", "legal_bases"):
        status, items = http.request("GET", f"/api/v1/reference/{name}")
        assert status == 200 and items and all("code" in i and "label" in i for i in items)
    status, spec = http.request("GET", "/api/v1/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    assert "/api/v1/referrals" in spec["paths"]


def test_concord_status_lists_every_service(running_system):
    result = running_system.concord("status", "--json", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    processes = json.loads(result.stdout)["processes"]
    names = {p["service"] for p in processes}
    assert names == {"referral", "case_management", "justice_liaison", "cross_border", "gateway"}
    assert all(p["pid"] and p["state"] == "RUNNING" for p in processes)


def test_every_audit_trail_verifies(running_system):
    running_system.submit_referral()
    result = running_system.concord("audit", "verify", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("intact") == 4
