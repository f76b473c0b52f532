"""The referral hub end to end, every service as its own process, over HTTP and the bus:
decline -> re-route -> accept; an SLA clock running out raising a flag the coordinator
sees; bulk intake over HTTP and with `concord import`, nothing twice; the pipeline query;
every field of the referral body refused by name with nothing stored.

The test system runs normal-urgency acceptance clocks of 4 s, checked every second
(tests/e2e/conftest.py); high urgency keeps its 24 h."""

import json

import pytest

from concord_contracts.events import read_event
from tests.bad_referrals import BAD_CASES
from tests.observe import REFERRAL_EVENTS, bus_tap, wait_for
from tests.synthetic import make_platform_report, make_referral

pytestmark = pytest.mark.e2e


@pytest.fixture
def hub_tap():
    """Every referral event on the bus, both lanes."""
    with bus_tap(*REFERRAL_EVENTS) as tap:
        yield tap


@pytest.fixture(scope="module")
def tokens(running_system):
    http = running_system.http
    return {name: http.token(name) for name in ("intake", "social", "police", "coordinator")}


def row_of(system, tokens, cid):
    status, row = system.http.request("GET", f"/api/v1/pipeline/{cid}", token=tokens["coordinator"])
    assert status == 200, row
    return row


def refused(http, token, path, body, code):
    """The decision is refused with 409 and `code`, said without naming the referral."""
    status, answer = http.request("POST", path, body, token=token)
    assert (status, answer["error"]["code"]) == (409, code), answer
    coordination_id = path.split("/")[4]  # /api/v1/<area>/<coordination_id>/<decision>
    assert coordination_id not in json.dumps(answer)


def test_decline_then_reroute_then_accept(running_system, tokens, hub_tap):
    http = running_system.http
    referral = make_referral(channel="helpline", categories=["cyberstalking"], urgency="high")
    receipt = running_system.submit_referral(referral)
    cid = receipt["coordination_id"]
    assert receipt["routed_to"] == ["social_services"]

    status, body = http.request(
        "POST", f"/api/v1/intake/{cid}/decline", {"reason": "whatever"}, token=tokens["social"]
    )
    assert status == 422 and "reason" in body["error"]["fields"]
    status, row = http.request(
        "POST",
        f"/api/v1/intake/{cid}/decline",
        {"reason": "better_agency", "better_agency": "justice"},
        token=tokens["social"],
    )
    assert status == 200, row
    assert row["stage"] == "triaged" and "declined_by_all" in row["flags"]
    decline = f"/api/v1/intake/{cid}/decline"
    refused(http, tokens["social"], decline, {"reason": "no_capacity"}, "wrong_state")
    status, _ = http.request(
        "POST", f"/api/v1/intake/{cid}/accept", token=tokens["social"]
    )  # declined: the details are no longer theirs
    assert status == 403

    # Back with the intake officer, who sees why and re-routes where it was suggested.
    status, detail = http.request("GET", f"/api/v1/referrals/{cid}", token=tokens["intake"])
    assert status == 200 and detail["child"]["given_name"] == referral["child"]["given_name"]
    assert detail["agencies"]["social_services"]["suggested_agency"] == "justice"
    status, _ = http.request("GET", f"/api/v1/referrals/{cid}", token=tokens["coordinator"])
    assert status == 403
    status, row = http.request(
        "POST",
        f"/api/v1/referrals/{cid}/reroute",
        {"agencies": ["justice"]},
        token=tokens["intake"],
    )
    assert status == 200, row
    assert row["stage"] == "routed" and row["agencies"]["justice"]["status"] == "pending_acceptance"
    reroute = f"/api/v1/referrals/{cid}/reroute"
    refused(http, tokens["intake"], reroute, {"agencies": ["justice"]}, "already_with_agency")

    waiting = http.every_item("/api/v1/intake", tokens["police"])
    assert cid in {item["coordination_id"] for item in waiting}
    for query, field in (
        ("limit=1000", "limit"),
        ("cursor=bm90LWEtY3Vyc29y", "cursor"),  # base64, but no place in the queue: the hub's 422
        ("stage=routed", "stage"),
    ):
        status, body = http.request("GET", f"/api/v1/intake?{query}", token=tokens["police"])
        assert status == 422 and field in body["error"]["fields"], (query, body)
    status, investigation = http.request(
        "POST", f"/api/v1/intake/{cid}/accept", token=tokens["police"]
    )
    assert status in (200, 201), investigation
    row = wait_for(lambda: (r := row_of(running_system, tokens, cid))["stage"] == "in_care" and r)
    assert row["agencies"]["justice"]["status"] == "investigation_opened"
    close = f"/api/v1/referrals/{cid}/close"
    refused(http, tokens["intake"], close, {"reason": "no_further_action"}, "agency_working")
    hops = [(h["kind"], h["agency"]) for h in row["timeline"]]
    for hop in (
        ("declined", "social_services"),
        ("routed", "justice"),
        ("accepted", "justice"),
    ):
        assert hop in hops
    assert all(h["time_spent_seconds"] >= 0 for h in row["timeline"])
    text = json.dumps(row)
    assert referral["child"]["given_name"] not in text and referral["summary"][:20] not in text

    for event_type in ("referral.declined", "referral.routed", "referral.accepted"):
        wait_for(lambda t=event_type: hub_tap(cid, t))
    accepted = read_event(hub_tap(cid, "referral.accepted")[0])
    assert accepted.payload["agency"] == "justice"


def test_an_sla_breach_raises_a_flag_the_coordinator_sees(running_system, tokens, hub_tap):
    receipt = running_system.submit_referral(
        make_referral(channel="school", categories=["cyberstalking"], urgency="normal")
    )
    cid = receipt["coordination_id"]
    row = wait_for(lambda: (r := row_of(running_system, tokens, cid))["overdue"] and r)
    assert "awaiting_acceptance_overdue" in row["flags"]
    assert row["agencies"]["social_services"]["overdue"]
    status, page = running_system.http.request(
        "GET",
        "/api/v1/pipeline?flag=awaiting_acceptance_overdue&limit=200&sort=newest",
        token=tokens["coordinator"],
    )
    assert status == 200 and cid in {i["coordination_id"] for i in page["items"]}
    escalated = wait_for(lambda: hub_tap(cid, "referral.escalated"))
    assert read_event(escalated[0]).payload["reason"] == "acceptance_overdue"
    status, summary = running_system.http.request(
        "GET", "/api/v1/pipeline/summary", token=tokens["coordinator"]
    )
    assert status == 200 and summary["counts"]["routed"] >= 1


def test_bulk_intake_over_http_and_the_command_line_creates_nothing_twice(
    running_system, tokens, tmp_path
):
    http = running_system.http
    reports = [make_platform_report(seed=900 + i) for i in range(6)]
    lines = "\n".join(json.dumps(r) for r in reports[:3]) + "\n{not json\n"
    status, result = http.request(
        "POST", "/api/v1/referrals:batch", raw=lines.encode(), token=tokens["intake"]
    )
    assert status == 200, result
    assert (result["created"], result["rejected"]) == (3, 1)
    assert result["results"][3]["line"] == 4 and "_line" in result["results"][3]["errors"]
    status, again = http.request(
        "POST", "/api/v1/referrals:batch", reports[:3], token=tokens["intake"]
    )
    assert (again["created"], again["replayed"]) == (0, 3)
    status, _ = http.request("POST", "/api/v1/referrals:batch", reports, token=tokens["social"])
    assert status == 403

    path = tmp_path / "reports.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in reports) + '\n{"channel": "mystery"}\n')
    done = running_system.concord("import", str(path), check=False)
    assert done.returncode == 1, done.stdout + done.stderr  # one line refused
    assert "7 reports: 3 created, 3 already there, 1 rejected" in done.stdout
    assert "line 7: rejected (channel" in done.stderr
    again = running_system.concord("import", str(path), check=False)
    assert "0 created, 6 already there, 1 rejected" in again.stdout

    status, page = http.request(
        "GET", "/api/v1/pipeline?channel=platform_report&limit=200", token=tokens["coordinator"]
    )
    assert status == 200
    keys = [r["idempotency_key"] for r in reports]
    assert len(keys) == len(set(keys))


def test_the_pipeline_query_over_http(running_system, tokens):
    http = running_system.http
    status, first = http.request(
        "GET",
        "/api/v1/pipeline?limit=2&stage=routed,in_care&urgency=high",
        token=tokens["coordinator"],
    )
    assert status == 200, first
    assert set(first["counts"]) == {"received", "triaged", "routed", "in_care", "closed"}
    assert all(i["urgency"] == "high" for i in first["items"])
    if first["next_cursor"]:
        status, second = http.request(
            "GET",
            f"/api/v1/pipeline?limit=2&stage=routed,in_care&urgency=high&cursor={first['next_cursor']}",
            token=tokens["coordinator"],
        )
        assert status == 200 and second["counts"] is None
        overlap = {i["coordination_id"] for i in first["items"]} & {
            i["coordination_id"] for i in second["items"]
        }
        assert not overlap
    for query, field in (
        ("stage=limbo", "stage"),
        ("limit=1000", "limit"),
        ("colour=red", "colour"),
        ("cursor=%00", "cursor"),
        ("received_from=yesterday", "received_from"),
    ):
        status, body = http.request("GET", f"/api/v1/pipeline?{query}", token=tokens["coordinator"])
        assert status == 422 and field in body["error"]["fields"], (query, body)
    status, version = http.request("GET", "/api/v1/pipeline/version", token=tokens["coordinator"])
    assert status == 200 and version["pipeline_version"]
    status, _ = http.request("GET", "/api/v1/pipeline", token=tokens["social"])
    assert status == 403
    status, reasons = http.request("GET", "/api/v1/reference/decline_reasons")
    assert (
        status == 200
        and {"code": "better_agency", "label": "Another agency is better placed"} in reasons
    )


def test_every_field_of_the_referral_body_is_refused_by_name_and_nothing_stored(
    running_system, tokens
):
    http = running_system.http
    status, before = http.request("GET", "/api/v1/pipeline/summary", token=tokens["coordinator"])
    for case in BAD_CASES:
        status, body = http.request(
            "POST", "/api/v1/referrals", case.build(), token=tokens["intake"]
        )
        if case.too_large:
            assert status == 413, case.id
            continue
        assert status == 422, (case.id, status, body)
        assert case.field in body["error"]["fields"], (case.id, body)
    status, after = http.request("GET", "/api/v1/pipeline/summary", token=tokens["coordinator"])
    received = lambda s: next(f["count"] for f in s["funnel"] if f["stage"] == "received")  # noqa: E731
    assert received(after) == received(before)
