"""The case pages without a network: the forms' rules (answers to a body, the service's
field errors back next to each field), and the pages rendered from records shaped by the
contract (`CaseRecordSchema`), answered by a stand-in for `case_management` that records
what it was asked. The pages against the real services: tests/e2e/test_browser_cases.py.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import pytest
from werkzeug.datastructures import MultiDict
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from concord_contracts.cases import (
    ApprovalItemSchema,
    CaseListSchema,
    CaseRecordSchema,
    NotesPageSchema,
)
from concord_contracts.codes import (
    CaseStatus,
    Instrument,
    InvestigationStatus,
    Organisation,
    RequestStatus,
    Role,
)
from concord_kit import errors as kit
from gateway import case_forms as forms
from gateway import case_pages, i18n, pages
from gateway.auth import Principal, Tokens
from gateway.web import exchange_for
from tests.synthetic import make_case_child, make_family, make_plan

pytestmark = pytest.mark.unit

TOKENS = Tokens("unit-test-key-unit-test-key-0123456789")
WORKER = str(uuid.UUID(int=1))
SUPERVISOR = str(uuid.UUID(int=2))
OTHER_WORKER = str(uuid.UUID(int=3))
NAMES = {WORKER: "Demo social worker", SUPERVISOR: "Demo supervisor", OTHER_WORKER: "Second"}
NOW = "2026-03-05T13:07:00+00:00"


# --- records shaped by the contract ----------------------------------------------------


def step_times(status: str) -> list[dict[str, Any]]:
    order = [str(s) for s in CaseStatus]
    reached = order.index(status)
    return [
        {"status": code, "reached_at": NOW if i <= reached else None}
        for i, code in enumerate(order)
    ]


def make_record(status: str = "new", **overrides: Any) -> dict[str, Any]:
    child = make_case_child(seed=7)
    record: dict[str, Any] = {
        "case_id": str(uuid.UUID(int=100)),
        "coordination_id": str(uuid.UUID(int=200)),
        "status": status,
        "origin": "referral",
        "version": 4,
        "opened_at": NOW,
        "opened_by": WORKER,
        "assigned_to": WORKER,
        "assigned_at": NOW,
        "workflow": step_times(status),
        "child": child,
        "contact": None,
        "family": [
            {**m, "person_id": str(uuid.UUID(int=300 + i)), "email": None, "notes": None}
            for i, m in enumerate(make_family(seed=3)["members"])
        ],
        "people": [],
        "safety": None,
        "assessment": None,
        "assessments_count": 0,
        "plan": None,
        "services": [],
        "follow_ups": [],
        "due": {"next_due_on": None, "overdue": False, "overdue_count": 0},
        "pending_approval": None,
        "closure": None,
        "withdrawal": None,
        "reopenings": [],
        "assignments": [
            {"assigned_to": WORKER, "assigned_by": WORKER, "assigned_at": NOW, "reason": None}
        ],
        "notes_count": 0,
        "partners": {
            "justice": {"status": "charged", "since": NOW, "due_at": None, "overdue": False},
            "cross_border": {
                "status": "sent",
                "since": NOW,
                "due_at": "2026-03-15T13:07:00+00:00",
                "overdue": True,
                "requests": [
                    {
                        "request_id": str(uuid.UUID(int=400)),
                        "instrument": "european_production_order",
                        "executing_country": "DE",
                        "status": "sent",
                        "since": NOW,
                        "due_at": "2026-03-15T13:07:00+00:00",
                        "overdue": True,
                    }
                ],
            },
        },
    }
    record.update(overrides)
    assert CaseRecordSchema().validate(record) == {}, CaseRecordSchema().validate(record)
    return record


def with_plan(record: dict[str, Any], state: str = "approved", service_status="planned"):
    plan = make_plan(seed=5)
    goals = []
    services = []
    for g, goal in enumerate(plan["goals"]):
        goal_id = str(uuid.UUID(int=500 + g))
        goal_services = []
        for s, service in enumerate(goal["services"]):
            full = {
                **service,
                "service_id": str(uuid.UUID(int=600 + 10 * g + s)),
                "goal_id": goal_id,
                "status": service_status if s == 0 else "planned",
                "delivered_on": None,
                "status_note": None,
                "approved": state == "approved",
                "overdue": False,
                "updated_at": NOW,
                "updated_by": WORKER,
            }
            goal_services.append(full)
            services.append(full)
        goals.append({**goal, "goal_id": goal_id, "services": goal_services})
    record["plan"] = {
        "version": 1,
        "state": state,
        "goals": goals,
        "written_by": WORKER,
        "written_at": NOW,
        "submitted_by": WORKER if state != "draft" else None,
        "submitted_at": NOW if state != "draft" else None,
        "decided_by": SUPERVISOR if state in ("approved", "returned") else None,
        "decided_at": NOW if state in ("approved", "returned") else None,
        "comment": None,
        "return_reason": "Make the second goal concrete." if state == "returned" else None,
        "approved_version": 1 if state == "approved" else None,
    }
    record["services"] = services
    assert CaseRecordSchema().validate(record) == {}, CaseRecordSchema().validate(record)
    return record


class FakeCases:
    """Stands in for the case_management RPC client: answers from a record, records calls,
    and raises what it is told to."""

    def __init__(self, record: dict[str, Any] | None = None, raises: Exception | None = None):
        self.record = record or make_record()
        self.raises = raises
        self.calls: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, method: str):
        def call(*args, **kwargs):
            self.calls.append((method, args, kwargs))
            if method in ("get_case",):
                return self.record
            if method == "list_notes":
                return {"items": [], "next_cursor": None}
            if self.raises is not None:
                raise self.raises
            if method == "list_cases":
                return {"items": [], "next_cursor": None}
            if method == "approvals_queue":
                return []
            return self.record

        return call

    def writes(self) -> list[str]:
        return [m for m, _, _ in self.calls if m not in ("get_case", "list_notes")]


def desk(cases: FakeCases) -> case_pages.Desk:
    return case_pages.Desk(
        cases=cases,
        tokens=TOKENS,
        display_names=lambda ids: {i: NAMES[i] for i in ids if i in NAMES},
        assignees=lambda agency: [
            {"user_id": WORKER, "display_name": NAMES[WORKER], "username": "social"},
            {"user_id": OTHER_WORKER, "display_name": NAMES[OTHER_WORKER], "username": "s2"},
        ],
    )


def principal(role: Role = Role.social_worker, user_id: str = WORKER) -> Principal:
    return Principal(
        user_id=user_id,
        username="social",
        display_name=NAMES[user_id],
        role=role,
        agency=Organisation.social_services,
        jti="jti",
        expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5),
    )


def exchange(
    path: str = "/",
    method: str = "GET",
    form: dict | list | None = None,
    lang: str = "en",
    who: Principal | None = None,
    csrf: bool = True,
):
    token = TOKENS.new_csrf_token()
    data = MultiDict(form or {})
    if csrf and method == "POST":
        data.add("csrf_token", token)
    builder = EnvironBuilder(
        path=path,
        method=method,
        query_string=f"lang={lang}" if method == "GET" else None,
        data=data if method == "POST" else None,
        headers={"Accept-Language": lang},
    )
    environ = builder.get_environ()
    environ["HTTP_COOKIE"] = f"{pages.CSRF_COOKIE}={token}"
    ex = exchange_for(Request(environ))
    ex.principal = who or principal()
    ex.csrf_token = token
    return ex


def html_of(response) -> str:
    return response.get_data(as_text=True)


# --- the forms' rules --------------------------------------------------------------------


def test_answers_become_the_body_the_service_takes():
    values = {
        "given_name": "Talo",
        "family_name": "",
        "age_years": "14",
        "sex": "female",
        "languages": ["fr", "en"],
        "interpreter_needed": "yes",
        "in_school": "",
        "disabilities": [],
    }
    body = forms.to_body(forms.CHILD, values)
    assert body == {
        "given_name": "Talo",
        "age_years": 14,
        "sex": "female",
        "languages": ["fr", "en"],
        "interpreter_needed": True,
        "disabilities": [],
    }


def test_a_number_that_is_not_one_is_sent_as_typed_for_the_service_to_name():
    body = forms.to_body(forms.CHILD, {"age_years": "fourteen"})
    assert body["age_years"] == "fourteen"


def test_blank_and_removed_rows_are_dropped_and_known_people_kept():
    values = {
        "members.0.person_id": str(uuid.UUID(int=1)),
        "members.0.given_name": "Talo",
        "members.0.relation": "mother",
        "members.0.is_main_carer": "on",
        "members.1.given_name": "Sorvek",
        "members.1.relation": "father",
        "members.1._remove": "on",
        "members.2.given_name": "",
        "members.2.relation": "",
        "members.3.given_name": "Menri",
        "members.3.relation": "sibling",
    }
    body = forms.to_body(forms.FAMILY, values)
    assert [m["given_name"] for m in body["members"]] == ["Talo", "Menri"]
    assert body["members"][0]["person_id"] == str(uuid.UUID(int=1))
    assert body["members"][0]["is_main_carer"] is True
    assert body["members"][1]["is_main_carer"] is False
    # Shown again, the rows are numbered as they were sent: the service's errors match.
    again = forms.compacted(forms.FAMILY, values)
    assert again["members.1.given_name"] == "Menri"
    assert "members.2.given_name" not in again


def test_a_service_under_way_cannot_be_removed_from_the_plan():
    values = {
        "goals.0.domain": "safety",
        "goals.0.description": "Stop the contact",
        "goals.0.services.0.service_id": str(uuid.UUID(int=9)),
        "goals.0.services.0.status": "in_progress",
        "goals.0.services.0.kind": "legal_aid",
        "goals.0.services.0.provider": "Centre",
        "goals.0.services.0.due_on": "2026-04-01",
        "goals.0.services.0._remove": "on",
        "goals.0._remove": "on",
    }
    body = forms.to_body(forms.PLAN, values)
    assert len(body["goals"]) == 1
    assert body["goals"][0]["services"][0]["service_id"] == str(uuid.UUID(int=9))
    assert "status" not in body["goals"][0]["services"][0], "a shown status is never sent"


def test_nested_field_errors_land_next_to_their_field_with_a_summary():
    values = {
        "goals.0.domain": "safety",
        "goals.0.description": "",
        "goals.0.services.0.kind": "legal_aid",
        "goals.0.services.0.provider": "Centre",
        "goals.0.services.0.due_on": "soon",
    }
    errors = forms.flatten_errors(
        {
            "goals": {
                "0": {
                    "description": ["Missing data for required field."],
                    "services": {"0": {"due_on": ["Not a valid date."]}},
                }
            }
        }
    )
    t = i18n.TRANSLATIONS["fr"]
    bound = forms.bind(forms.PLAN, values, errors, t, "fr", case_pages.options_for_language("fr"))
    anchors = {anchor: (label, message) for anchor, label, message in bound.summary}
    assert anchors["f-goals-0-description"][1] == t.gettext("This is required.")
    assert anchors["f-goals-0-services-0-due_on"][1] == t.gettext("Enter a real date.")
    assert anchors["f-goals-0-services-0-due_on"][0].startswith("Objectif 1")
    assert bound.form_errors == []


def test_an_error_on_something_not_shown_goes_to_the_nearest_question_or_the_top():
    errors = forms.flatten_errors(
        {"members": {"0": {"person_id": ["Not a valid UUID."]}}, "_schema": ["Nope."]}
    )
    values = {"members.0.given_name": "Talo", "members.0.person_id": "x"}
    t = i18n.TRANSLATIONS["en"]
    bound = forms.bind(forms.FAMILY, values, errors, t, "en", {})
    assert [a for a, _, _ in bound.summary] == ["f-members-0"]
    assert bound.form_errors == ["Nope."]


@pytest.mark.parametrize(
    ("message", "language", "kind", "expected"),
    [
        ("Missing data for required field.", "es", "text", "Este dato es obligatorio."),
        ("Longer than maximum length 100.", "en", "text", "Too long: at most 100 characters."),
        ("Length must be between 1 and 20.", "en", "", "Give between 1 and 20."),
        ("Must be one of: low, medium, high.", "en", "radio", "Choose one of the answers given."),
        ("Say when it was delivered.", "fr", "date", None),
        ("Some message the pages never heard of.", "en", "text", None),
        ("Some message the pages never heard of.", "fr", "text", None),
    ],
)
def test_service_messages_are_said_plainly_in_the_page_language(message, language, kind, expected):
    t = i18n.TRANSLATIONS[language]
    said = forms.plain_message(message, t, language, kind)
    if expected is not None:
        assert said == expected
    elif language == "en":
        assert said == message
    else:
        assert said != message and said.strip()


def test_every_service_message_of_the_case_schemas_has_a_plain_version():
    """Each fixed message the case schemas raise is translated, not shown in English."""
    import inspect

    from concord_contracts import cases

    source = inspect.getsource(cases)
    raised = set(re.findall(r'ValidationError\(\s*"([^"{]+)"', source))
    raised |= set(re.findall(r'error="([^"]+)"', source))
    raised |= set(re.findall(r'_unique\([^\n]*"([^"]+)"\)\n', source))
    raised = {message for message in raised if message.endswith(".")}
    assert "Each category once." in raised, "messages not found: did the schemas move?"
    for message in sorted(raised):
        french = forms.plain_message(message, i18n.TRANSLATIONS["fr"], "fr")
        assert french != message and french != i18n.TRANSLATIONS["fr"].gettext(
            "This answer is not accepted: check it."
        ), f"no plain French version of {message!r}"


def test_countries_and_languages_are_named_in_the_page_language():
    assert ("DE", "Allemagne") in forms.countries("fr")
    assert ("de", "alemán") in forms.languages("es")
    assert all(len(code) == 2 for code, _ in forms.countries("en"))


def test_every_partner_status_and_instrument_has_a_label_in_each_language():
    for language in i18n.LANGUAGES:
        labels = i18n.LABELS[language]
        assert set(labels["investigation_statuses"]) == {c.value for c in InvestigationStatus}
        assert set(labels["request_statuses"]) == {c.value for c in RequestStatus}
        assert set(labels["instruments"]) == {c.value for c in Instrument}
    assert i18n.label("fr", "investigation_statuses", "charged") != "Charged"


# --- the pages ---------------------------------------------------------------------------


def test_the_case_page_shows_the_workflow_bar_with_the_current_step_announced():
    record = with_plan(make_record("plan_approved"))
    ex = exchange(f"/cases/{record['case_id']}", lang="en")
    html = html_of(case_pages.case_page(ex, desk(FakeCases(record)), record["case_id"]))
    current = re.findall(r'<li class="workflow-step workflow-(\w+)"( aria-current="step")?', html)
    assert [state for state, _ in current] == ["done", "done", "current", "todo", "todo", "todo"]
    assert [bool(aria) for _, aria in current] == [False, False, True, False, False, False]
    step = html.split('aria-current="step"')[1].split("</li>")[0]
    assert "Current step:" in step and "Plan approved" in step
    assert '<main id="main"' in html and "<h1>" in html
    assert "<title>Case · Concord</title>" in html


def test_the_case_page_shows_the_partners_under_their_agency_keys():
    record = make_record()
    ex = exchange(f"/cases/{record['case_id']}", lang="fr")
    html = html_of(case_pages.case_page(ex, desk(FakeCases(record)), record["case_id"]))
    justice = html.split('data-agency="justice"')[1].split("</li>")[0]
    assert i18n.label("fr", "investigation_statuses", "charged") in justice
    abroad = html.split('data-agency="cross_border"')[1].split('<li class="partner')[0]
    assert "Allemagne" in abroad and "En retard" in abroad


def test_a_case_opened_from_a_referral_with_little_known_still_shows():
    record = make_record()
    record["child"] = {"given_name": None, "sex": None, "age_years": 15}
    record["partners"] = {}
    html = html_of(case_pages.case_page(exchange(), desk(FakeCases(record)), record["case_id"]))
    assert "Name not known" in html and "15 years" in html
    assert html.count("Nothing received from this agency.") == 2


def test_reading_the_case_page_says_why_for_the_audit_trail():
    cases = FakeCases()
    case_pages.case_page(exchange(), desk(cases), cases.record["case_id"])
    method, args, kwargs = cases.calls[0]
    assert method == "get_case" and kwargs == {"reason": case_pages.READ_REASON}


def test_a_form_is_filled_with_what_the_case_holds_and_carries_its_version():
    record = make_record()
    ex = exchange(f"/cases/{record['case_id']}/family")
    html = html_of(case_pages.form_page(ex, desk(FakeCases(record)), record["case_id"], "family"))
    first = record["family"][0]
    assert f'value="{first["given_name"]}"' in html
    assert f'name="members.0.person_id" value="{first["person_id"]}"' in html
    assert 'name="expected_version" value="4"' in html
    assert 'name="csrf_token"' in html
    # every visible control has a label
    for control_id in re.findall(r'<(?:input|select|textarea)[^>]* id="([^"]+)"', html):
        assert f'for="{control_id}"' in html, control_id


def test_a_saved_section_goes_back_to_the_case_with_a_notice():
    record = make_record()
    cases = FakeCases(record)
    form = {
        "expected_version": "4",
        "given_name": "Talo",
        "age_years": "12",
        "sex": "female",
        "languages": "fr",
    }
    ex = exchange(f"/cases/{record['case_id']}/child", "POST", form)
    response = case_pages.form_submit(ex, desk(cases), record["case_id"], "child")
    assert response.status_code == 303
    assert response.location.endswith("notice=case_section_saved#child")
    method, args, kwargs = cases.calls[-1]
    assert method == "update_section"
    assert args[1] == "child" and args[2]["age_years"] == 12 and args[2]["languages"] == ["fr"]
    assert kwargs == {"expected_version": 4}


def test_a_refused_form_is_shown_again_with_each_error_and_nothing_lost():
    record = make_record()
    refusal = kit.BadInput({"members": {"0": {"relation": ["Missing data for required field."]}}})
    cases = FakeCases(record, raises=refusal)
    form = {"expected_version": "4", "members.0.given_name": "Qelvek", "members.0.relation": ""}
    ex = exchange(f"/cases/{record['case_id']}/family", "POST", form, lang="es")
    response = case_pages.form_submit(ex, desk(cases), record["case_id"], "family")
    html = html_of(response)
    assert response.status_code == 422
    assert 'role="alert"' in html and 'href="#f-members-0-relation"' in html
    assert 'id="f-members-0-relation-error"' in html and "Este dato es obligatorio." in html
    assert 'aria-invalid="true"' in html
    assert 'value="Qelvek"' in html
    title = html.split("<title>")[1].split("</title>")[0]
    assert title.startswith("Error: Familia"), title
    assert record["child"]["given_name"] not in title, "a name in a title stays in history"


def test_a_form_without_its_csrf_token_saves_nothing():
    cases = FakeCases()
    form = {"expected_version": "4", "text": "A note"}
    ex = exchange("/cases/x/notes", "POST", form, csrf=False)
    response = case_pages.form_submit(ex, desk(cases), cases.record["case_id"], "notes")
    assert response.status_code == 400
    assert cases.writes() == []
    assert "A note" in html_of(response)


def test_a_change_made_meanwhile_is_said_plainly_and_nothing_is_lost():
    cases = FakeCases(raises=kit.Conflict(case_pages.STALE_VERSION))
    form = {"expected_version": "3", "safety_measures": "Accounts blocked"}
    ex = exchange("/cases/x/safety", "POST", form)
    response = case_pages.form_submit(ex, desk(cases), cases.record["case_id"], "safety")
    html = html_of(response)
    assert response.status_code == 409
    assert "Someone else changed this case" in html
    assert "Accounts blocked" in html
    assert 'name="expected_version" value="4"' in html, "the form now carries the new version"


def test_add_another_shows_one_more_row_and_saves_nothing():
    cases = FakeCases()
    form = {"expected_version": "4", "members.0.given_name": "Talo", "_add": "members"}
    ex = exchange("/cases/x/people", "POST", form)
    response = case_pages.form_submit(ex, desk(cases), cases.record["case_id"], "people")
    html = html_of(response)
    assert response.status_code == 200 and cases.writes() == []
    assert 'id="f-members-2"' in html  # row 0 (Talo), the blank row 1, one more
    assert 'value="Talo"' in html


def test_save_and_send_for_approval_sends_the_saved_version():
    record = with_plan(make_record("assessed"), state="draft")
    cases = FakeCases(record)
    form = {
        "expected_version": "4",
        "_then": "submit",
        "goals.0.domain": "safety",
        "goals.0.description": "Stop the contact",
        "goals.0.services.0.kind": "legal_aid",
        "goals.0.services.0.provider": "Centre",
        "goals.0.services.0.due_on": "2026-04-01",
    }
    ex = exchange("/cases/x/plan", "POST", form)
    response = case_pages.form_submit(ex, desk(cases), record["case_id"], "plan")
    assert response.location.endswith("notice=case_plan_submitted#plan")
    assert [m for m in cases.writes()] == ["save_plan", "submit_plan"]
    assert cases.calls[-1][2] == {"expected_version": record["version"]}


def test_an_unknown_form_or_case_id_is_a_404_page_not_a_500():
    cases = FakeCases()
    with pytest.raises(Exception) as caught:
        case_pages.form_page(exchange(), desk(cases), cases.record["case_id"], "everything")
    assert pages.errors.problem_for(caught.value).status == 404
    with pytest.raises(Exception) as caught:
        case_pages.case_page(exchange(), desk(cases), "not-a-uuid")
    assert pages.errors.problem_for(caught.value).status == 404
    assert cases.calls == []


def test_my_cases_asks_for_the_workers_own_cases_with_the_filters_given():
    cases = FakeCases()
    ex = exchange("/cases")
    ex.request.args = MultiDict(
        [
            ("state", "all"),
            ("risk_level", "high"),
            ("risk_level", "bogus"),
            ("overdue", "true"),
            ("assigned_to", OTHER_WORKER),
        ]
    )
    case_pages.my_cases(ex, desk(cases))
    method, args, _ = cases.calls[0]
    assert method == "list_cases"
    assert args[0] == {
        "state": "all",
        "limit": case_pages.LIST_LIMIT,
        "risk_level": ["high"],
        "overdue": True,
        "assigned_to": WORKER,  # a social worker lists their own cases only
    }


def test_my_cases_lists_due_and_overdue_with_words_not_colour_alone():
    item = {
        "case_id": str(uuid.UUID(int=100)),
        "coordination_id": str(uuid.UUID(int=200)),
        "status": "services_under_way",
        "origin": "referral",
        "version": 7,
        "opened_at": NOW,
        "assigned_to": WORKER,
        "child": {"given_name": "Talo", "family_name": "Menrik", "age_years": 14},
        "risk_level": "high",
        "next_due_on": "2026-03-01",
        "next_due_kind": "visit",
        "overdue": True,
        "overdue_count": 2,
        "pending_approval": None,
    }
    answer = {"items": [item], "next_cursor": "abc"}
    assert CaseListSchema().validate(answer) == {}

    class Listing(FakeCases):
        def list_cases(self, query):
            return answer

    html = html_of(case_pages.my_cases(exchange("/cases"), desk(Listing())))
    assert 'href="/cases/00000000-0000-0000-0000-000000000064"' in html
    assert "Talo Menrik" in html and "2 overdue" in html and "Follow-up visit" in html
    assert "cursor=abc" in html and 'rel="next"' in html


def test_a_stale_next_page_link_starts_the_case_list_again_with_the_lists_notice():
    class Listing(FakeCases):
        def list_cases(self, query):
            if "cursor" in query:
                raise kit.BadInput({"cursor": ["Not a cursor of this query."]})
            return {"items": [], "next_cursor": None}

    stale = exchange("/cases")
    stale.request.args = MultiDict([("status", "new"), ("cursor", "old")])
    response = case_pages.my_cases(stale, desk(Listing()))
    assert response.status_code == 303
    assert response.location == "/cases?status=new&notice=list_restarted"
    again = exchange("/cases")
    again.request.args = MultiDict([("status", "new"), ("notice", "list_restarted")])
    html = html_of(case_pages.my_cases(again, desk(Listing())))
    # The waiting list's notice too (pages.waiting_list): one notice for every list.
    assert "That page of the list is no longer valid: here is the first page." in html


def test_the_approvals_queue_offers_approve_and_never_on_ones_own_request():
    item = {
        "kind": "plan",
        "case_id": str(uuid.UUID(int=100)),
        "coordination_id": str(uuid.UUID(int=200)),
        "status": "assessed",
        "assigned_to": WORKER,
        "requested_by": WORKER,
        "requested_at": NOW,
        "child": {"given_name": "Talo", "family_name": None, "age_years": 9},
        "version": 7,
        "plan_version": 2,
        "closure_reason": None,
        "warnings": [],
        "own_request": False,
    }
    own = {
        **item,
        "kind": "closure",
        "closure_reason": "goals_met",
        "own_request": True,
        "warnings": ["investigation_active"],
        "plan_version": None,
    }
    assert ApprovalItemSchema(many=True).validate([item, own]) == {}

    class Queue(FakeCases):
        def approvals_queue(self):
            return [item, own]

    ex = exchange("/approvals", who=principal(Role.supervisor, SUPERVISOR))
    html = html_of(case_pages.approvals(ex, desk(Queue())))
    plan_row, closure_row = html.split("<tr data-case-id=")[1:3]
    assert "/plan/approve" in plan_row and "Approve" in plan_row
    # Approving from the queue is refused if the case changed since the queue was read.
    assert 'name="expected_version" value="7"' in plan_row
    assert "/approve" not in closure_row and "another supervisor decides" in closure_row
    assert "The police investigation is still active" in closure_row


def test_the_approvals_queue_is_for_supervisors():
    with pytest.raises(kit.Forbidden):
        case_pages.approvals(exchange("/approvals"), desk(FakeCases()))


def test_approving_from_the_queue_sends_the_decision_and_returns_to_the_queue():
    cases = FakeCases()
    ex = exchange(
        "/approvals/x/plan/approve",
        "POST",
        {"_from": "queue"},
        who=principal(Role.supervisor, SUPERVISOR),
    )
    response = case_pages.decide(ex, desk(cases), cases.record["case_id"], "plan", "approve")
    assert response.location == "/approvals?notice=case_plan_approved"
    assert cases.writes() == ["approve_plan"]


def test_four_eyes_refusal_is_explained_on_the_queue():
    cases = FakeCases(raises=kit.Conflict(case_pages.FOUR_EYES))
    ex = exchange(
        "/approvals/x/closure/approve",
        "POST",
        {"_from": "queue"},
        who=principal(Role.supervisor, SUPERVISOR),
    )
    response = case_pages.decide(ex, desk(cases), cases.record["case_id"], "closure", "approve")
    assert response.location == "/approvals?notice=case_four_eyes"


def test_returning_a_plan_without_a_reason_shows_the_decision_page_again():
    record = with_plan(make_record("assessed"), state="submitted")
    record["pending_approval"] = "plan"
    cases = FakeCases(record, raises=kit.BadInput({"reason": ["Missing data for required field."]}))
    ex = exchange(
        "/approvals/x/plan/return",
        "POST",
        {"reason": ""},
        who=principal(Role.supervisor, SUPERVISOR),
    )
    response = case_pages.decide(ex, desk(cases), record["case_id"], "plan", "return")
    html = html_of(response)
    assert response.status_code == 422
    assert 'href="#f-reason"' in html and 'id="f-reason-error"' in html


def test_notes_page_lists_notes_newest_first_with_their_author():
    notes = {
        "items": [
            {
                "note_id": str(uuid.UUID(int=9)),
                "text": "Called <the school>",
                "written_by": WORKER,
                "written_at": NOW,
            }
        ],
        "next_cursor": "older-1",
    }
    assert NotesPageSchema().validate(notes) == {}

    class Notes(FakeCases):
        def list_notes(self, case_id, query):
            return notes

    cases = Notes()
    html = html_of(
        case_pages.form_page(
            exchange("/cases/x/notes"), desk(cases), cases.record["case_id"], "notes"
        )
    )
    assert "Called &lt;the school&gt;" in html, "free text is escaped"
    assert "Demo social worker" in html and "before=older-1" in html


def test_a_case_registered_directly_opens_on_its_page():
    cases = FakeCases()
    form = {
        "child.given_name": "Talo",
        "child.age_years": "13",
        "child.sex": "female",
        "categories": ["sextortion", "grooming"],
        "urgency": "high",
    }
    ex = exchange("/cases/new", "POST", list(_pairs(form)))
    response = case_pages.register(ex, desk(cases))
    assert response.status_code == 303
    assert response.location == f"/cases/{cases.record['case_id']}?notice=case_registered"
    method, args, _ = cases.calls[-1]
    assert method == "register_case"
    assert args[0]["child"] == {
        "given_name": "Talo",
        "age_years": 13,
        "sex": "female",
        "languages": [],
        "disabilities": [],
    }
    assert args[0]["categories"] == ["sextortion", "grooming"]


def _pairs(form: dict):
    for key, value in form.items():
        for item in value if isinstance(value, list) else [value]:
            yield key, item


def test_registration_refused_shows_the_child_errors_next_to_the_fields():
    cases = FakeCases(
        raises=kit.BadInput({"child": {"date_of_birth": ["Give date_of_birth or age_years."]}})
    )
    ex = exchange("/cases/new", "POST", {"child.given_name": "Talo"}, lang="fr")
    response = case_pages.register(ex, desk(cases))
    html = html_of(response)
    assert response.status_code == 422
    assert 'id="f-child-date_of_birth-error"' in html
    assert "Indiquez la date de naissance ou l&#39;âge." in html


def test_only_social_services_staff_register_or_list_cases():
    police = Principal(
        user_id=WORKER,
        username="police",
        display_name="Police",
        role=Role.police_liaison_officer,
        agency=Organisation.justice,
        jti="j",
        expires_at=dt.datetime.now(dt.UTC),
    )
    cases = FakeCases()
    for page in (case_pages.registration_page, case_pages.my_cases):
        with pytest.raises(kit.Forbidden):
            page(exchange("/cases", who=police), desk(cases))
    assert cases.calls == []


def test_the_assignment_form_lists_the_agencys_social_workers_and_marks_the_current_one():
    ex = exchange("/cases/x/assignment", who=principal(Role.supervisor, SUPERVISOR))
    cases = FakeCases()
    html = html_of(case_pages.form_page(ex, desk(cases), cases.record["case_id"], "assignment"))
    assert f'<option value="{WORKER}">Demo social worker (assigned now)</option>' in html
    assert f'<option value="{OTHER_WORKER}">Second</option>' in html


def test_reassigning_sends_who_and_why():
    cases = FakeCases()
    form = {"expected_version": "4", "assign_to": OTHER_WORKER, "reason": "Caseload balance"}
    ex = exchange("/cases/x/assignment", "POST", form, who=principal(Role.supervisor, SUPERVISOR))
    response = case_pages.form_submit(ex, desk(cases), cases.record["case_id"], "assignment")
    assert response.location.endswith("notice=case_assigned#assignment")
    assert cases.calls[-1][0] == "assign_case"
    assert cases.calls[-1][1][1] == {"assign_to": OTHER_WORKER, "reason": "Caseload balance"}


def test_a_service_is_updated_from_its_own_form():
    record = with_plan(make_record("plan_approved"))
    service = record["services"][0]
    cases = FakeCases(record)
    page = case_pages.item_page(
        exchange(), desk(cases), record["case_id"], service["service_id"], "service"
    )
    html = html_of(page)
    assert 'value="planned" checked' in html and service["provider"] in html
    form = {
        "expected_version": "4",
        "status": "delivered",
        "delivered_on": "2026-03-04",
        "provider": service["provider"],
        "due_on": service["due_on"],
    }
    ex = exchange("/x", "POST", form)
    response = case_pages.item_submit(
        ex, desk(cases), record["case_id"], service["service_id"], "service"
    )
    assert response.location.endswith("notice=case_service_updated#plan")
    method, args, kwargs = cases.calls[-1]
    assert method == "update_service" and args[1] == service["service_id"]
    assert args[2]["status"] == "delivered" and kwargs == {"expected_version": 4}


def test_an_unknown_service_or_follow_up_is_a_404_page():
    cases = FakeCases()
    missing = str(uuid.UUID(int=999))
    for action in ("service", "record", case_pages.follow_up_action("service")):
        with pytest.raises(Exception) as caught:
            case_pages.item_page(exchange(), desk(cases), cases.record["case_id"], missing, action)
        assert pages.errors.problem_for(caught.value).status == 404


def test_overdue_follow_ups_are_flagged_in_words_on_the_case_page():
    record = make_record("services_under_way")
    record = with_plan(record, service_status="in_progress")
    record["follow_ups"] = [
        {
            "follow_up_id": str(uuid.UUID(int=700)),
            "kind": "visit",
            "due_on": "2026-03-01",
            "status": "scheduled",
            "overdue": True,
            "scheduled_by": WORKER,
            "scheduled_at": NOW,
            "done_on": None,
            "recorded_by": None,
            "recorded_at": None,
            "summary": None,
            "child_views": None,
            "child_views_not_recorded": None,
            "cancel_reason": None,
        }
    ]
    record["due"] = {"next_due_on": "2026-03-01", "overdue": True, "overdue_count": 1}
    assert CaseRecordSchema().validate(record) == {}
    html = html_of(case_pages.case_page(exchange(), desk(FakeCases(record)), record["case_id"]))
    assert "1 follow-up or service is overdue." in html
    row = html.split('<tr class="row-overdue">')[1].split("</tr>")[0]
    assert "Overdue" in row and "/follow-ups/00000000-0000-0000-0000-0000000002bc/record" in row


def test_a_closure_waiting_for_a_decision_shows_its_warnings_to_the_supervisor():
    record = make_record("closure_requested")
    record["pending_approval"] = "closure"
    record["closure"] = {
        "reason": "goals_met",
        "reason_text": None,
        "requested_by": WORKER,
        "requested_at": NOW,
        "warnings": ["investigation_active", "request_abroad_active"],
        "decision": None,
        "decided_by": None,
        "decided_at": None,
        "comment": None,
        "reject_reason": None,
    }
    assert CaseRecordSchema().validate(record) == {}
    ex = exchange("/approvals/x/closure", who=principal(Role.supervisor, SUPERVISOR))
    html = html_of(
        case_pages.decision_page(ex, desk(FakeCases(record)), record["case_id"], "closure")
    )
    assert "The police investigation is still active" in html
    assert "A request abroad is still open" in html
    assert "/closure/approve" in html and "/closure/reject" in html
    assert 'data-agency="cross_border"' in html, "the partners' status is shown with it"


def test_the_assignment_form_is_not_offered_to_a_social_worker():
    cases = FakeCases()
    with pytest.raises(kit.Forbidden):
        case_pages.form_page(exchange(), desk(cases), cases.record["case_id"], "assignment")
    assert cases.calls == []


def _every_page():
    record = with_plan(make_record("services_under_way"), service_status="in_progress")
    supervisor = principal(Role.supervisor, SUPERVISOR)
    case_id = record["case_id"]
    made = {
        "case": lambda: case_pages.case_page(
            exchange(who=supervisor), desk(FakeCases(record)), case_id
        ),
        "register": lambda: case_pages.registration_page(
            exchange(who=supervisor), desk(FakeCases(record))
        ),
        "decision": lambda: case_pages.decision_page(
            exchange(who=supervisor), desk(FakeCases(record)), case_id, "plan"
        ),
    }
    for name in case_pages.CASE_FORMS:
        made[name] = lambda name=name: case_pages.form_page(
            exchange(who=supervisor), desk(FakeCases(record)), case_id, name
        )
    return made


@pytest.mark.parametrize("name", sorted(_every_page()))
def test_each_page_has_unique_ids_and_every_label_and_description_points_somewhere(name):
    html = html_of(_every_page()[name]())
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
    references = re.findall(r'(?:for|aria-describedby|aria-labelledby)="([^"]+)"', html)
    dangling = [ref for refs in references for ref in refs.split() if ref not in ids]
    assert dangling == []
    assert html.count("<h1>") == 1 and '<main id="main"' in html


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        (
            ("stale_version", "the case changed since it was read (version 5, not 4)"),
            "stale_version",
        ),
        (("four_eyes", "another supervisor decides on a plan this supervisor wrote"), "four_eyes"),
        (("wrong_state", "a closed case is not assigned"), ""),
        # Only the code counts, never the wording.
        (("the case changed since it was read (version 5, not 4): read it again",), ""),
        ((), ""),
    ],
)
def test_a_409_is_told_apart_by_its_code_never_shown_as_written(args, kind):
    conflict = kit.Conflict(*args)
    assert case_pages.conflict_kind(conflict) == kind
    ex = exchange(lang="fr")
    message = case_pages.conflict_message(ex, conflict)
    assert all(said not in message for said in args)


@pytest.mark.parametrize(
    ("kind", "reason", "closed", "said"),
    [
        ("revoked", "consent_withdrawn", True, "it was closed with it"),
        ("declined", "already_known", False, "The case stays open"),
    ],
)
def test_a_referral_the_hub_took_back_is_said_on_the_case_page(kind, reason, closed, said):
    withdrawal = {"kind": kind, "reason": reason, "decided_at": NOW, "case_closed": closed}
    record = make_record("closed" if closed else "assessed", withdrawal=withdrawal)
    html = html_of(case_pages.case_page(exchange(), desk(FakeCases(record)), record["case_id"]))
    assert 'id="withdrawal"' in html and said in html
    label = i18n.label("en", "revoke_reasons" if kind == "revoked" else "decline_reasons", reason)
    assert label in html
    assert ("withdrew this referral" in html) == (kind == "revoked")
