"""Social services' case work end to end, over HTTP, every service its own process: from
the accepted referral to the approved closure with the coordinators' pipeline showing each
step; a case registered directly; strangers refused (and the refusals in the audit
trail); bad input on every case route answered 4xx naming the field, nothing written."""

import datetime as dt
import json
import time
import urllib.error
import urllib.request
import uuid

import pytest
import sqlalchemy as sa

from concord_kit.tables import audit_trail
from tests.conftest import database_url
from tests.synthetic import (
    make_assessment,
    make_case_child,
    make_family,
    make_plan,
    make_referral,
    make_registration,
    make_safety,
    make_self_report,
)

pytestmark = pytest.mark.e2e

STEPS = ["assessed", "plan_approved", "services_under_way", "closure_requested", "closed"]


def wait_for(fetch, predicate, timeout=30):
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = fetch()
        if predicate(value):
            return value
        time.sleep(0.2)
    raise AssertionError(f"not reached in time: {value}")


def send(base_url, method, path, body=None, token=None, headers=None):
    """A JSON request with extra headers (If-Match); answers (status, parsed body)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base_url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, str(value))
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class Desk:
    """One person at the API: their token, and JSON calls that must succeed."""

    def __init__(self, system, username):
        self.base_url = system.base_url
        self.token = system.http.token(username)

    def send(self, method, path, body=None, headers=None):
        return send(self.base_url, method, path, body, self.token, headers)

    def call(self, method, path, body=None, expect=200, headers=None):
        status, answer = self.send(method, path, body, headers)
        assert status == expect, (method, path, status, answer)
        return answer


@pytest.fixture(scope="module")
def desks(running_system):
    return {
        name: Desk(running_system, name)
        for name in (
            "intake",
            "social",
            "social2",
            "supervisor",
            "supervisor2",
            "police",
            "central",
            "coordinator",
        )
    }


def accepted_case(system, desks, by="social"):
    referral = make_referral(channel="helpline", categories=["sextortion"], urgency="high")
    cid = system.submit_referral(referral)["coordination_id"]
    receipt = desks[by].call("POST", f"/api/v1/intake/{cid}/accept")
    return cid, receipt["case_id"], referral


def test_from_accepted_referral_to_approved_closure_the_pipeline_shows_each_step(
    running_system, desks
):
    social, supervisor, coordinator = desks["social"], desks["supervisor"], desks["coordinator"]
    cid, case_id, referral = accepted_case(running_system, desks)
    base = f"/api/v1/cases/{case_id}"

    def pipeline():
        return coordinator.call("GET", f"/api/v1/pipeline/{cid}")

    def shows(status):
        row = wait_for(pipeline, lambda r: r["agencies"]["social_services"].get("detail") == status)
        assert referral["child"]["given_name"] not in json.dumps(row)
        return row

    shows("new")
    mine = social.call("GET", "/api/v1/cases?state=open&limit=100")
    assert case_id in {i["case_id"] for i in mine["items"]}
    [item] = [i for i in mine["items"] if i["case_id"] == case_id]
    assert item["coordination_id"] == cid and item["status"] == "new"

    case = social.call("GET", f"{base}?reason=first+home+visit")
    assert case["child"]["given_name"] == referral["child"]["given_name"]
    version = case["version"]
    case = social.call(
        "PUT", f"{base}/sections/child", make_case_child(11), headers={"If-Match": f'"{version}"'}
    )
    assert case["version"] == version + 1
    social.call("PUT", f"{base}/sections/family", make_family(11))
    social.call("PUT", f"{base}/sections/safety", make_safety(11))

    case = social.call("POST", f"{base}/assessments", make_assessment(11), expect=201)
    assert case["status"] == "assessed"
    shows("assessed")

    case = social.call("PUT", f"{base}/plan", make_plan(11, services=2))
    case = social.call("POST", f"{base}/plan/submit")
    queue = supervisor.call("GET", "/api/v1/cases/approvals")
    assert any(i["case_id"] == case_id and i["kind"] == "plan" for i in queue)
    case = supervisor.call("POST", f"{base}/plan/approve", {"comment": "Agreed."})
    assert case["status"] == "plan_approved"
    shows("plan_approved")

    service_id = case["services"][0]["service_id"]
    case = social.call("PATCH", f"{base}/services/{service_id}", {"status": "in_progress"})
    assert case["status"] == "services_under_way"
    shows("services_under_way")

    today = dt.date.today().isoformat()
    case = social.call(
        "POST", f"{base}/follow-ups", {"kind": "review", "due_on": today}, expect=201
    )
    review = case["follow_ups"][0]["follow_up_id"]
    social.call(
        "POST",
        f"{base}/follow-ups/{review}/record",
        {"done_on": today, "summary": "Vektorsu.", "child_views": "Wants to go back to school."},
    )
    social.call("POST", f"{base}/notes", {"text": "Spoke with the school nurse."}, expect=201)
    social.call(
        "PATCH",
        f"{base}/services/{service_id}",
        {"status": "delivered", "delivered_on": today},
    )
    case = social.call("POST", f"{base}/closure", {"reason": "goals_met"})
    assert case["status"] == "closure_requested"
    shows("closure_requested")
    case = supervisor.call("POST", f"{base}/closure/approve")
    assert case["status"] == "closed"
    row = shows("closed")
    assert row["agencies"]["social_services"]["status"] == "closed"

    # The pipeline's timeline holds each step of the case, in order.
    steps = [
        hop["detail"]
        for hop in row["timeline"]
        if hop["kind"] == "partner_status" and hop["agency"] == "social_services"
    ]
    assert [s for s in steps if s in STEPS] == STEPS
    # The closed case leaves "my cases" (open by default) and is found among the closed.
    open_ids = {i["case_id"] for i in social.call("GET", "/api/v1/cases?limit=100")["items"]}
    assert case_id not in open_ids
    closed = social.call("GET", "/api/v1/cases?state=closed&limit=100")["items"]
    assert case_id in {i["case_id"] for i in closed}


def test_a_nameless_self_report_is_accepted_and_its_case_shows_without_a_name(
    running_system, desks
):
    # A child reporting on their own may give nothing but what happened: no name, no
    # consent on record. The intake officer routes it under a legal basis.
    report = make_self_report(3)
    report.pop("child", None)
    cid = running_system.submit_referral(report)["coordination_id"]
    desks["intake"].call(
        "POST",
        f"/api/v1/referrals/{cid}/reroute",
        {"agencies": ["social_services"], "legal_basis": "child_safety"},
    )
    receipt = desks["social"].call("POST", f"/api/v1/intake/{cid}/accept")
    case = desks["social"].call("GET", f"/api/v1/cases/{receipt['case_id']}")
    assert case["status"] == "new" and case["coordination_id"] == cid
    assert case["child"]["given_name"] is None and case["child"]["family_name"] is None
    mine = desks["social"].call("GET", "/api/v1/cases?limit=100")["items"]
    [item] = [i for i in mine if i["case_id"] == receipt["case_id"]]
    assert item["child"]["given_name"] is None


def test_a_case_registered_directly_appears_in_the_pipeline(running_system, desks):
    social = desks["social2"]
    registration = make_registration(5)
    case = social.call("POST", "/api/v1/cases", registration, expect=201)
    assert case["origin"] == "direct" and case["status"] == "new"
    assert case["family"] and case["safety"]["concerns"]
    cid = case["coordination_id"]
    row = wait_for(
        lambda: desks["coordinator"].call("GET", f"/api/v1/pipeline/{cid}"),
        lambda r: r["agencies"].get("social_services", {}).get("status") == "case_opened",
    )
    assert row["channel"] == "social_services" and list(row["agencies"]) == ["social_services"]
    assert registration["child"]["given_name"] not in json.dumps(row)
    mine = social.call("GET", "/api/v1/cases?origin=direct&limit=100")["items"]
    assert case["case_id"] in {i["case_id"] for i in mine}


def test_strangers_cannot_read_a_case_and_their_attempts_are_recorded(running_system, desks):
    _, case_id, _ = accepted_case(running_system, desks)
    strangers = ("social2", "central", "coordinator", "police")
    for name in strangers:
        status, body = running_system.http.request(
            "GET", f"/api/v1/cases/{case_id}?reason=looking", token=desks[name].token
        )
        assert status == 403, (name, body)
        assert body["error"]["code"] == "forbidden"
        assert "given_name" not in json.dumps(body)
    # A worker's list holds only their own cases.
    theirs = desks["social2"].call("GET", "/api/v1/cases?limit=100")["items"]
    assert case_id not in {i["case_id"] for i in theirs}
    for name in ("coordinator", "police"):
        status, _ = running_system.http.request("GET", "/api/v1/cases", token=desks[name].token)
        assert status == 403

    engine = sa.create_engine(database_url("case_management"))
    try:
        with engine.connect() as conn:
            refused = conn.execute(
                sa.select(audit_trail.c.role, audit_trail.c.agency, audit_trail.c.reason).where(
                    audit_trail.c.subject == case_id,
                    audit_trail.c.action == "case.read",
                    audit_trail.c.outcome == "refused",
                )
            ).all()
    finally:
        engine.dispose()
    assert {(role, agency) for role, agency, _ in refused} >= {
        ("social_worker", "social_services"),
        ("central_authority_officer", "cross_border"),
        ("coordinator", "coordination_body"),
        ("police_liaison_officer", "justice"),
    }
    assert all(reason for _, _, reason in refused)


def test_bad_input_on_every_case_route_names_the_field_and_writes_nothing(running_system, desks):
    http = running_system.http
    social, supervisor = desks["social"], desks["supervisor"]
    _, case_id, _ = accepted_case(running_system, desks)
    base = f"/api/v1/cases/{case_id}"
    before = social.call("GET", base)
    nobody = str(uuid.uuid4())
    long_text = "x" * 20_000
    tried = [
        # (who, method, path, body, field)
        (social, "GET", "/api/v1/cases?limit=many", None, "limit"),
        (social, "GET", "/api/v1/cases?status=lost", None, "status"),
        (social, "GET", "/api/v1/cases?overdue=maybe", None, "overdue"),
        (social, "GET", "/api/v1/cases?colour=red", None, "colour"),
        (social, "GET", "/api/v1/cases?cursor=nonsense", None, "cursor"),
        (social, "POST", "/api/v1/cases", {**make_registration(1), "urgency": "soon"}, "urgency"),
        (social, "POST", "/api/v1/cases", {"categories": ["sextortion"]}, "child"),
        (social, "GET", "/api/v1/cases/not-a-case", None, "case_id"),
        (social, "GET", f"{base}?reason={'y' * 300}", None, "reason"),
        (social, "PUT", f"{base}/sections/child", {**make_case_child(1), "sex": "x"}, "sex"),
        (social, "PUT", f"{base}/sections/hobbies", {}, "section"),
        (social, "PUT", f"{base}/sections/contact", {"phone": "call me"}, "phone"),
        (social, "PUT", f"{base}/sections/family", {"members": [{"relation": "aunt"}]}, "members"),
        (social, "PUT", f"{base}/sections/people", {"members": "none"}, "members"),
        (social, "PUT", f"{base}/sections/safety", {"concerns": [{"concern": "x"}]}, "concerns"),
        (supervisor, "POST", f"{base}/assignment", {"assign_to": nobody}, "assign_to"),
        (supervisor, "POST", f"{base}/assignment", {"assign_to": ""}, "assign_to"),
        (social, "GET", "/api/v1/cases/x/assessments", None, "case_id"),
        (social, "POST", f"{base}/assessments", {"risk_level": "low"}, "needs"),
        (social, "POST", f"{base}/assessments", make_assessment(1, summary=long_text), "summary"),
        (social, "PUT", f"{base}/plan", {"goals": "get better"}, "goals"),
        (social, "POST", "/api/v1/cases/x/plan/submit", None, "case_id"),
        (supervisor, "POST", f"{base}/plan/approve", {"comment": 5}, "comment"),
        (supervisor, "POST", f"{base}/plan/return", {}, "reason"),
        (social, "PATCH", f"{base}/services/zz", {"status": "delivered"}, "service_id"),
        (social, "PATCH", f"{base}/services/{nobody}", {"status": "done"}, "status"),
        (social, "PATCH", f"{base}/services/{nobody}", {"status": "delivered"}, "delivered_on"),
        (social, "POST", f"{base}/follow-ups", {"kind": "party", "due_on": "2030-01-01"}, "kind"),
        (social, "POST", f"{base}/follow-ups", {"kind": "visit", "due_on": "2001-01-01"}, "due_on"),
        (social, "POST", f"{base}/follow-ups/{nobody}/record", {"summary": "s"}, "done_on"),
        (social, "POST", f"{base}/follow-ups/zz/cancel", {"reason": "r"}, "follow_up_id"),
        (social, "POST", f"{base}/follow-ups/{nobody}/cancel", {}, "reason"),
        (social, "GET", f"{base}/notes?limit=0", None, "limit"),
        (social, "GET", f"{base}/notes?before=nonsense", None, "before"),
        (social, "POST", f"{base}/notes", {"text": ""}, "text"),
        (social, "POST", f"{base}/notes", {"text": "ok", "author": "me"}, "author"),
        (social, "POST", f"{base}/closure", {"reason": "tired"}, "reason"),
        (social, "POST", f"{base}/closure", {"reason": "other"}, "reason_text"),
        (supervisor, "POST", f"{base}/closure/approve", {"comment": []}, "comment"),
        (supervisor, "POST", f"{base}/closure/reject", {}, "reason"),
        (social, "POST", f"{base}/reopen", {"reason": ""}, "reason"),
    ]
    for desk, method, path, body, field in tried:
        status, answer = http.request(method, path, body, token=desk.token)
        assert status == 422, (method, path, status, answer)
        assert field in json.dumps(answer["error"].get("fields")), (method, path, answer)
    # The version the writer read, garbled; not JSON; too large.
    status, answer = http.request("PUT", f"{base}/sections/contact", {}, token=social.token)
    assert status == 200  # an empty contact section is a valid section
    version = answer["version"]
    status, answer = http.request("POST", f"{base}/notes", raw=b"{not json", token=social.token)
    assert status == 400
    status, answer = http.request(
        "PUT", f"{base}/plan", raw=b'{"goals": [' + b"1," * 200_000 + b"1]}", token=social.token
    )
    assert status == 413

    # A garbled If-Match, then a stale one: refused, nothing written.
    def with_header(value):
        return social.send(
            "PUT", f"{base}/sections/contact", {"address": "Stale"}, {"If-Match": value}
        )

    status, answer = with_header('"abc"')
    assert status == 422 and "If-Match" in answer["error"]["fields"]
    status, answer = with_header(f'"{version - 1}"')
    assert status == 409, answer
    after = social.call("GET", base)
    assert after["version"] == version and after["contact"]["address"] is None
    assert after["notes_count"] == before["notes_count"] == 0
    assert after["status"] == "new" and after["assessments_count"] == 0


def test_each_409_says_why_and_the_queue_gives_the_version_to_approve_with(running_system, desks):
    social, supervisor = desks["social"], desks["supervisor"]
    _, case_id, _ = accepted_case(running_system, desks)
    base = f"/api/v1/cases/{case_id}"
    status, answer = supervisor.send("POST", f"{base}/plan/approve")
    assert (status, answer["error"]["code"]) == (409, "wrong_state"), answer

    social.call("POST", f"{base}/assessments", make_assessment(12), expect=201)
    social.call("PUT", f"{base}/plan", make_plan(12, services=1))
    submitted = social.call("POST", f"{base}/plan/submit")
    queue = supervisor.call("GET", "/api/v1/cases/approvals")
    item = next(i for i in queue if i["case_id"] == case_id and i["kind"] == "plan")
    assert item["version"] == submitted["version"]

    # The plan changes after the queue was read: approving what was read is refused.
    social.call("PUT", f"{base}/plan", make_plan(12, services=2))
    resubmitted = social.call("POST", f"{base}/plan/submit")
    stale = {"If-Match": f'"{item["version"]}"'}
    status, answer = supervisor.send("POST", f"{base}/plan/approve", None, stale)
    assert (status, answer["error"]["code"]) == (409, "stale_version"), answer
    assert "version" not in answer["error"]["message"], "the service's own text stays inside"

    # A supervisor who wrote the plan does not approve it.
    supervisor.call("PUT", f"{base}/plan", make_plan(12, services=1))
    mine = supervisor.call("POST", f"{base}/plan/submit")
    assert mine["version"] > resubmitted["version"]
    current = {"If-Match": f'"{mine["version"]}"'}
    status, answer = supervisor.send("POST", f"{base}/plan/approve", None, current)
    assert (status, answer["error"]["code"]) == (409, "four_eyes"), answer
    approved = desks["supervisor2"].call("POST", f"{base}/plan/approve", None, headers=current)

    # The list gives the version to write with, without reading the case first.
    listed = social.call("GET", f"/api/v1/cases?status={approved['status']}&limit=100")
    item = next(i for i in listed["items"] if i["case_id"] == case_id)
    assert item["version"] == approved["version"]
    from_list = {"If-Match": f'"{item["version"]}"'}
    social.call("PUT", f"{base}/sections/contact", {"address": "From the list"}, headers=from_list)
