"""The pipeline board and the intake officer's pages, rendered without a bus: the referral
service is a recording stand-in that answers in the shapes of docs/interfaces/referral.md.

What is checked here is the gateway's own work: which filters reach the service, what a
card and a column show, how the form becomes a submission and the service's field errors
become plain words next to each field, which actions are offered, and what is refused."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path

import pytest
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from concord_contracts.codes import Organisation, Role
from concord_contracts.rpc import ReferralSubmissionSchema
from concord_kit import errors as kit
from gateway import board_pages, i18n, intake_pages, pages, referral_form
from gateway.auth import Principal
from gateway.web import exchange_for

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 3, 5, 15, 0, tzinfo=dt.UTC)
CID = "0c6f3f59-44f5-4a0e-8b0e-3c9f8a3d2e11"
OTHER = "7d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"
PEOPLE = {
    "coordinator": (Role.coordinator, Organisation.coordination_body),
    "intake": (Role.intake_officer, Organisation.referral_hub),
    "social": (Role.social_worker, Organisation.social_services),
}


def exchange(role="coordinator", query="", method="GET", data=None, path="/pipeline"):
    builder = EnvironBuilder(path=path, query_string=query, method=method, data=data)
    ex = exchange_for(Request(builder.get_environ()))
    person, agency = PEOPLE[role]
    ex.principal = Principal(
        "6f1c8a0e-2b7d-4c1e-9a53-0d2f6b8e4a17",
        role,
        f"Demo {role}",
        person,
        agency,
        "jti",
        NOW,
    )
    ex.csrf_token = "nonce.signature"
    return ex


class CsrfAlwaysMatches:
    def csrf_matches(self, cookie, submitted):
        return submitted == "nonce.signature"


def item(cid=CID, stage="routed", urgency="normal", overdue=False, flags=()):
    return {
        "coordination_id": cid,
        "stage": stage,
        "urgency": urgency,
        "channel": "helpline",
        "categories": ["grooming", "sextortion"],
        "received_at": "2026-03-05T12:00:00+00:00",
        "stage_since": "2026-03-05T12:00:00+00:00",
        "agencies": {
            "social_services": {
                "status": "pending_acceptance",
                "since": "2026-03-05T12:00:00+00:00",
                "due_at": "2026-03-05T14:00:00+00:00" if overdue else "2026-03-06T12:00:00+00:00",
                "overdue": overdue,
            }
        },
        "flags": list(flags) + (["awaiting_acceptance_overdue"] if overdue else []),
        "due_at": None,
        "overdue": overdue,
        "updated_at": "2026-03-05T12:00:00+00:00",
    }


class Answer:
    """An RPC sent now and read later: like the real one, a refusal comes with the result."""

    def __init__(self, call):
        self.call = call

    def result(self):
        return self.call()


class Referral:
    """The referral service as the gateway calls it, recording every call."""

    def __init__(self, items=None, detail=None, refuse=None):
        self.calls: list[tuple[str, tuple]] = []
        self.items = items or {}
        self.detail = detail
        self.refuse = refuse

    def call_async(self, method, *args):
        return Answer(lambda: getattr(self, method)(*args))

    def pipeline(self, query):
        self.calls.append(("pipeline", (query,)))
        stage = (query.get("stage") or ["routed"])[0]
        found = self.items.get(stage, [])
        return {
            "items": found,
            "next_cursor": "next-page" if found else None,
            "counts": None,
            "pipeline_version": "v7",
        }

    def pipeline_summary(self, query):
        self.calls.append(("pipeline_summary", (query,)))
        return {
            "counts": {stage: len(found) for stage, found in self.items.items()},
            "funnel": [{"stage": "received", "count": 9}, {"stage": "routed", "count": 4}],
            "ageing": {"routed": {"under_2_hours": 3, "days_3_to_7": 1}},
            "pipeline_version": "v7",
            "as_of": NOW.isoformat(),
        }

    def pipeline_version(self):
        self.calls.append(("pipeline_version", ()))
        return {"pipeline_version": "v8"}

    def referral_detail(self, cid):
        self.calls.append(("referral_detail", (cid,)))
        return self.detail

    def _act(self, method, cid, body):
        self.calls.append((method, (cid, body)))
        if self.refuse is not None:
            raise self.refuse
        return {}

    def reroute(self, cid, body):
        return self._act("reroute", cid, body)

    def link_duplicate(self, cid, body):
        return self._act("link_duplicate", cid, body)

    def close(self, cid, body):
        return self._act("close", cid, body)


def html_of(response):
    return response.get_data(as_text=True)


# --- the vendored charting library ----------------------------------------------------------


def test_the_vendored_chart_library_is_the_one_its_readme_names():
    vendor = Path(pages.STATIC_DIR) / "vendor"
    readme = (vendor / "README.md").read_text()
    assert f"| {pages.CHARTJS_VERSION} |" in readme
    digest = re.search(r"`([0-9a-f]{64})`", readme).group(1)
    library = (vendor / "chartjs" / "chart.umd.min.js").read_bytes()
    assert hashlib.sha256(library).hexdigest() == digest
    assert library.startswith(b"/*!\n * Chart.js v" + pages.CHARTJS_VERSION.encode())
    assert (vendor / "chartjs" / "LICENSE.md").read_text().startswith("The MIT License")


def test_only_listed_static_files_are_served():
    served = pages.static_file(f"chart-{pages.CHARTJS_VERSION}.umd.min.js")
    assert served is not None and served.mimetype == "text/javascript"
    assert pages.static_file("board.js").mimetype == "text/javascript"
    for name in ("README.md", "vendor", "../pages.py", "chart.umd.min.js"):
        assert pages.static_file(name) is None


# --- filters ---------------------------------------------------------------------------------


def test_filters_are_checked_and_passed_on_as_the_service_takes_them():
    args = MultiDict(
        [
            ("stage", "routed,in_care"),
            ("urgency", "immediate_danger"),
            ("agency", "justice"),
            ("agency_status", "declined"),
            ("category", "sextortion"),
            ("channel", "platform_report"),
            ("flag", "awaiting_acceptance_overdue"),
            ("received_from", "2026-03-01"),
            ("received_to", "2026-03-04"),
        ]
    )
    query = board_pages.parse_filters(args)
    assert query.invalid == []
    assert query.filters == {
        "stage": ["routed", "in_care"],
        "urgency": ["immediate_danger"],
        "agency": ["justice"],
        "agency_status": ["declined"],
        "flag": ["awaiting_acceptance_overdue"],
        "category": ["sextortion"],
        "channel": ["platform_report"],
        "received_from": "2026-03-01T00:00:00+00:00",
        # the day is included: the service's bound is exclusive, so the next midnight
        "received_to": "2026-03-05T00:00:00+00:00",
    }


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ([("agency", "hub_of_nowhere")], "agency"),
        ([("stage", "routed"), ("stage", "<script>")], "stage"),
        ([("received_from", "yesterday")], "received_from"),
        ([("received_from", "2026-03-05"), ("received_to", "2026-03-01")], "received_to"),
        ([("flag", "x" * 5000)], "flag"),
    ],
)
def test_a_filter_that_is_not_understood_is_named_and_left_out(args, named):
    query = board_pages.parse_filters(MultiDict(args))
    assert named in query.invalid
    assert all("script" not in str(v) and "hub_of" not in str(v) for v in query.filters.values())
    assert named not in query.filters or named == "stage"


# --- the board -------------------------------------------------------------------------------


def board_html(role="coordinator", query="", items=None):
    referral = Referral(
        items
        if items is not None
        else {
            "routed": [
                item(urgency="immediate_danger"),
                item(cid=OTHER, urgency="normal", overdue=True),
            ]
        }
    )
    response = board_pages.board(exchange(role, query), referral, now=lambda: NOW)
    return response, html_of(response), referral


def test_the_board_has_a_column_per_stage_with_its_count():
    response, html, referral = board_html()
    assert response.status_code == 200
    columns = re.findall(r'<section class="board-column"[^>]*data-stage="(\w+)"', html)
    assert columns == ["received", "triaged", "routed", "in_care", "closed"]
    assert re.search(r"Referrals at this stage: </span>2</span>", html)
    asked = [args[0] for method, args in referral.calls if method == "pipeline"]
    assert [q["stage"] for q in asked] == [[s] for s in columns]
    assert all(q["sort"] == "priority" for q in asked if q["stage"] != ["closed"])
    assert {method for method, _ in referral.calls} == {"pipeline", "pipeline_summary"}


def test_cards_keep_the_services_order_urgent_first_and_overdue_marked():
    _, html, _ = board_html()
    urgent, overdue = html.index(f'data-cid="{CID}"'), html.index(f'data-cid="{OTHER}"')
    assert urgent < overdue
    overdue_card = html[overdue : html.index("</ol>", overdue)]
    assert 'class="card card-normal card-overdue"' in html[overdue - 60 : overdue]
    assert 'data-flag="awaiting_acceptance_overdue"' in overdue_card
    assert "overdue by 1 hour" in overdue_card
    assert "card-overdue" not in html[urgent - 60 : urgent]


def test_filters_survive_in_every_link_of_the_board():
    query = "urgency=normal&agency=social_services&received_from=2026-03-01"
    _, html, referral = board_html(query=query)
    summary_query = next(args[0] for m, args in referral.calls if m == "pipeline_summary")
    assert summary_query["urgency"] == ["normal"]
    assert '<option value="normal" selected>' in html
    assert '<option value="social_services" selected>' in html
    assert 'value="2026-03-01"' in html
    # Refresh, "more at this stage" and the language links keep the filters.
    kept = "urgency=normal&amp;agency=social_services&amp;received_from=2026-03-01"
    assert f'href="/pipeline?{kept}"' in html
    assert (
        "/pipeline?urgency=normal&amp;agency=social_services&amp;received_from=2026-03-01"
        "&amp;stage=routed&amp;cursor=next-page" in html
    )
    assert f"?{kept}&amp;lang=fr" in html


def test_a_next_page_belongs_to_one_stage():
    _, _, referral = board_html(query="stage=routed&cursor=next-page")
    asked = [args[0] for method, args in referral.calls if method == "pipeline"]
    assert [q.get("cursor") for q in asked] == ["next-page"]
    _, _, referral = board_html(query="cursor=next-page")
    assert all("cursor" not in args[0] for m, args in referral.calls if m == "pipeline")


def test_charts_come_with_a_table_of_the_same_numbers_and_scripts_from_this_site_only():
    response, html, _ = board_html()
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert f'src="/static/chart-{pages.CHARTJS_VERSION}.umd.min.js"' in html
    assert 'id="funnel-canvas" role="img"' in html and 'id="ageing-canvas" role="img"' in html
    funnel_table = html[html.index("Referrals reaching each step") :]
    assert re.search(r"<th scope=\"row\">[^<]+</th><td>9</td>", funnel_table)
    data = re.search(r'<script type="application/json" id="board-data">(.*?)</script>', html, re.S)
    assert '"values": [9, 4]' in data.group(1).replace("\\u0022", '"') or "[9, 4]" in data.group(1)
    assert '"version": "v7"' in data.group(1)
    assert "<script>" not in html  # no inline script


def test_the_board_speaks_the_chosen_language():
    _, html, _ = board_html(query="lang=es")
    assert '<html lang="es">' in html
    assert "Aplicar filtros" in html or "Aplicar" in html


def test_a_card_leads_the_intake_officer_to_the_referral_and_a_coordinator_to_its_row():
    _, html, _ = board_html(role="coordinator")
    assert f'href="/pipeline/{CID}"' in html and f'href="/referrals/{CID}"' not in html
    _, html, _ = board_html(role="intake")
    assert f'href="/referrals/{CID}"' in html


def test_the_polling_endpoint_answers_only_the_version():
    referral = Referral()
    response = board_pages.version(exchange(), referral.pipeline_version)
    assert response.get_json() == {"version": "v8"}


def test_coordinators_and_hub_staff_land_on_their_own_page():
    for role, home in (("coordinator", "/pipeline"), ("intake", "/referrals")):
        response = pages.waiting_list(exchange(role, path="/"), lambda query: {})
        assert response.status_code == 303 and response.location.endswith(home)


WAITING = {
    "coordination_id": CID,
    "received_at": "2026-03-05T13:07:00+00:00",
    "channel": "helpline",
    "categories": ["grooming"],
    "urgency": "high",
    "status": "pending_acceptance",
    "since": "2026-03-05T13:07:00+00:00",
    "due_at": None,
}


def waiting_list_html(query="", next_cursor=None):
    asked = []

    def intake_queue(q):
        asked.append(q)
        return {"items": [WAITING], "next_cursor": next_cursor}

    response = pages.waiting_list(exchange("social", query, path="/"), intake_queue)
    return asked, response.get_data(as_text=True)


def test_the_waiting_list_links_its_next_page_and_back_to_the_first():
    asked, html = waiting_list_html(next_cursor="bmV4dA")
    assert asked == [{"limit": pages.WAITING_LIST_PAGE}]
    assert '<a href="/?cursor=bmV4dA" rel="next">Next page</a>' in html
    assert "First page" not in html
    asked, html = waiting_list_html("cursor=bmV4dA")
    assert asked == [{"limit": pages.WAITING_LIST_PAGE, "cursor": "bmV4dA"}]
    assert 'rel="next"' not in html and '<a href="/">First page</a>' in html  # the last
    _, html = waiting_list_html()
    assert 'class="pager"' not in html  # one page only


def test_a_role_without_a_waiting_list_is_told_so():
    def refuse(query):
        raise kit.Forbidden("no intake queue for this role")

    response = pages.waiting_list(exchange("social", path="/"), refuse)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "has no waiting list of its own" in html and 'class="pager"' not in html


def test_a_stale_next_page_link_starts_the_waiting_list_again():
    def refuse(query):
        raise kit.BadInput({"cursor": ["Not a cursor of this query."]})

    response = pages.waiting_list(exchange("social", "cursor=old", path="/"), refuse)
    assert response.status_code == 303
    assert response.location.endswith("/?notice=list_restarted")
    with pytest.raises(kit.BadInput):  # without a cursor, it is not the link's fault
        pages.waiting_list(exchange("social", path="/"), refuse)


# --- the referral form -------------------------------------------------------------------


FILLED = MultiDict(
    [
        ("csrf_token", "nonce.signature"),
        ("idempotency_key", "form-1"),
        ("channel", "helpline"),
        ("urgency", "high"),
        ("categories", "grooming"),
        ("categories", "sextortion"),
        ("risk_indicators", "deadline_threat"),
        ("child.given_name", "Talo"),
        ("child.family_name", ""),
        ("child.date_of_birth", ""),
        ("child.age_years", " 14 "),
        ("child.sex", "female"),
        ("reporter.kind", "parent_or_carer"),
        ("reporter.contact.name", ""),
        ("reporter.contact.phone", "+44 7700 900123"),
        ("reporter.contact.email", ""),
        ("summary", "Kadorni suvek talomen.\nRasuvek lomen."),
        ("consent.status", "not_sought"),
        ("consent.by", "not_applicable"),
        ("consent.legal_basis", "child_safety"),
    ]
)


def test_the_form_becomes_the_submission_the_service_takes():
    submission = referral_form.submission_from_form(FILLED)
    assert submission == {
        "channel": "helpline",
        "urgency": "high",
        "summary": "Kadorni suvek talomen.\nRasuvek lomen.",
        "idempotency_key": "form-1",
        "categories": ["grooming", "sextortion"],
        "risk_indicators": ["deadline_threat"],
        "child": {"given_name": "Talo", "age_years": 14, "sex": "female"},
        "reporter": {
            "kind": "parent_or_carer",
            "contact": {"name": None, "phone": "+44 7700 900123", "email": None},
        },
        "consent": {
            "status": "not_sought",
            "by": "not_applicable",
            "legal_basis": "child_safety",
        },
    }
    ReferralSubmissionSchema().load(submission)


def test_a_platform_report_carries_its_platform_and_file_digests():
    form = MultiDict(
        [
            ("channel", "platform_report"),
            ("categories", "csam_distribution"),
            ("platform", " example_video_app "),
            ("incident_type", "csam"),
            ("annotations", "generative_ai"),
            ("external_reference", "R-2026-0001"),
            ("file_hashes", "sha256:" + "a" * 64 + "\n\nMD5 " + "b" * 32 + "\n"),
            ("consent.status", "not_sought"),
            ("consent.by", "not_applicable"),
            ("consent.legal_basis", "mandatory_reporting"),
        ]
    )
    submission = referral_form.submission_from_form(form)
    assert submission["platform"] == "example_video_app"
    assert submission["annotations"] == ["generative_ai"]
    assert submission["file_hashes"] == [
        {"algorithm": "sha256", "digest": "a" * 64},
        {"algorithm": "md5", "digest": "b" * 32},
    ]
    assert "child" not in submission and "reporter" not in submission
    ReferralSubmissionSchema().load(submission)


def test_parts_left_empty_are_not_sent():
    form = MultiDict([("channel", "child_self_report"), ("categories", "grooming")])
    assert referral_form.submission_from_form(form) == {
        "channel": "child_self_report",
        "categories": ["grooming"],
    }


def submit(form, language="en", service=None):
    calls = []

    def send(submission):
        calls.append(submission)
        if service is not None:
            return service(submission)
        return {"coordination_id": CID}

    ex = exchange("intake", f"lang={language}", "POST", form, path="/referrals/new")
    return intake_pages.submit_referral_form(ex, CsrfAlwaysMatches(), send), calls


def test_a_valid_form_is_sent_once_and_the_receipt_shown():
    response, calls = submit(FILLED.to_dict(flat=False))
    assert response.status_code == 303
    assert response.location == f"/referrals/{CID}/receipt"
    assert len(calls) == 1 and calls[0]["idempotency_key"] == "form-1"


def test_a_form_with_mistakes_is_shown_again_with_each_next_to_its_field():
    form = FILLED.copy()
    form.setlist("categories", [])
    form["child.age_years"] = "fourteen"
    form["summary"] = "bad\x07text"
    form["reporter.contact.phone"] = "call me"
    response, calls = submit(form.to_dict(flat=False))
    html = html_of(response)
    assert response.status_code == 422 and calls == []  # nothing was sent, nothing stored
    for field, text in (
        ("categories", "Tick at least one kind of harm."),
        ("child-age_years", "Enter a whole number, for example 14."),
        ("summary", "Remove the invisible control characters"),
        ("reporter-contact-phone", "Use only digits, spaces, brackets, dashes and a leading +."),
    ):
        error = re.search(rf'<p class="field-error" id="f-{field}-error">(.*?)</p>', html, re.S)
        assert error and text in error.group(1), field
        assert f'href="#f-{field}"' in html  # the error summary links to the field
        assert f'id="f-{field}"' in html
    assert 'aria-invalid="true"' in html and 'role="alert"' in html
    assert 'value="fourteen"' in html  # what was typed is kept


def test_the_services_own_refusal_is_shown_the_same_way_in_french():
    def refuse(submission):
        raise kit.BadInput({"child": {"given_name": ["Missing data for required field."]}})

    response, calls = submit(FILLED.to_dict(flat=False), "fr", refuse)
    html = html_of(response)
    assert response.status_code == 422 and len(calls) == 1
    error = re.search(r'id="f-child-given_name-error">(.*?)</p>', html, re.S).group(1)
    assert "Indiquez" in error or "prénom" in error


LESS = "less than or equal to"


@pytest.mark.parametrize(
    ("messages", "field", "expected"),
    [
        ({"channel": ["Must be one of: a, b."]}, "channel", "Choose one of the options given."),
        (
            {"child": {"age_years": [f"Must be greater than or equal to 0 and {LESS} 17."]}},
            "child.age_years",
            "Enter a number from 0 to 17.",
        ),
        ({"summary": ["Longer than maximum length 10000."]}, "summary", "Use at most 10000 char"),
        (
            {"file_hashes": {1: {"digest": ["A sha256 digest has 64 hex digits."]}}},
            "file_hashes",
            "A sha256 digest has 64 hexadecimal digits.",
        ),
        (
            {"consent": {"_schema": ["A legal basis is required when consent is not given."]}},
            "consent.status",
            "Choose the legal basis for sharing without consent.",
        ),
        ({"nonsense": ["?"]}, "summary", "This answer is not valid: check it and try again."),
        # The referral service's own words for what a channel needs or does not take.
        ({"child": {"sex": ["Required for a helpline referral."]}}, "child.sex", "Choose the"),
        ({"child": ["Required for a school referral."]}, "child.given_name", "Enter the child"),
        ({"platform": ["Only a platform report carries this."]}, "platform", "Leave this empty"),
    ],
)
def test_schema_messages_become_plain_words_on_the_right_field(messages, field, expected):
    errors = referral_form.form_errors(i18n.TRANSLATIONS["en"], messages)
    assert list(errors) == [field] and len(errors[field]) == 1
    assert errors[field][0].startswith(expected)


def test_every_schema_refusal_of_a_field_lands_on_a_field_of_the_form():
    bad = {
        "channel": 7,
        "categories": ["nope"],
        "urgency": "soon",
        "child": {"given_name": "x" * 200, "age_years": "old", "sex": "?"},
        "reporter": {"kind": 1, "contact": {"email": "no"}},
        "summary": "\x00",
        "consent": {"status": "maybe", "by": "?"},
        "platform": "Not A Code",
        "requesting_country": "xx",
        "file_hashes": [{"algorithm": "crc", "digest": "zz"}],
    }
    with pytest.raises(ValidationError) as refused:
        ReferralSubmissionSchema().load(bad)
    errors = referral_form.form_errors(i18n.TRANSLATIONS["en"], refused.value.normalized_messages())
    assert set(errors) <= set(referral_form.BY_NAME)
    assert {"channel", "categories", "urgency", "child.given_name", "platform"} <= set(errors)


def test_only_hub_staff_get_the_form():
    with pytest.raises(kit.Forbidden):
        intake_pages.new_referral_form(exchange("coordinator", path="/referrals/new"))
    html = html_of(intake_pages.new_referral_form(exchange("intake", path="/referrals/new")))
    assert 'name="idempotency_key" value="form-' in html
    for field in referral_form.FIELDS:
        assert f'id="{field.id}"' in html, field.name
        if field.hint:
            assert f'id="{field.id}-hint"' in html, field.name


# --- the referral's page and the intake officer's actions ---------------------------------


def detail(stage="routed", consent="not_sought", working=False):
    row = item(flags=["possible_duplicate"])
    row["stage"] = stage
    if working:
        row["agencies"]["justice"] = {
            "status": "investigation_opened",
            "since": "2026-03-05T13:00:00+00:00",
        }
    row.update(
        {
            "timeline": [
                {
                    "at": "2026-03-05T12:00:00+00:00",
                    "kind": "received",
                    "agency": None,
                    "status": None,
                    "detail": None,
                    "time_spent_seconds": 0,
                    "ongoing": False,
                }
            ],
            "child": {
                "given_name": "Talo",
                "family_name": "Menrivek",
                "age_years": 14,
                "sex": "female",
            },
            "reporter": {"kind": "parent_or_carer", "contact": None},
            "summary": "Kadorni suvek talomen.",
            "consent": {"status": consent, "by": "not_applicable", "legal_basis": "child_safety"},
            "triage": {
                "stated_urgency": "normal",
                "urgency": "high",
                "rule": "deadline_threat",
                "risk_indicators": ["deadline_threat"],
            },
            "routing": [
                {
                    "decided_at": "2026-03-05T12:00:00+00:00",
                    "decided_by": "6f1c8a0e-2b7d-4c1e-9a53-0d2f6b8e4a17",
                    "role": "intake_officer",
                    "kind": "initial",
                    "agencies": ["social_services"],
                    "rule": "child_protection",
                    "legal_basis": "child_safety",
                    "legal_basis_decided_by": "6f1c8a0e-2b7d-4c1e-9a53-0d2f6b8e4a17",
                }
            ],
            "possible_duplicates": [
                {
                    "coordination_id": OTHER,
                    "channel": "school",
                    "received_at": "2026-03-05T11:00:00+00:00",
                    "status": "open",
                }
            ],
        }
    )
    return row


def names(ids):
    return {i: "Demo intake officer" for i in ids}


def test_the_intake_officer_sees_the_child_the_routing_and_the_actions_allowed():
    referral = Referral(detail=detail())
    response = intake_pages.detail_page(
        exchange("intake", path=f"/referrals/{CID}"), CID, referral.referral_detail, names
    )
    html = html_of(response)
    assert "Talo" in html and "Menrivek" in html and "Kadorni suvek talomen." in html
    assert "Demo intake officer" in html  # the person who decided, not their id
    assert f'action="/referrals/{CID}/reroute"' in html
    assert 'name="legal_basis"' in html  # consent was not given: a legal basis is asked
    assert 'value="social_services" id="reroute-social_services"' not in html  # holds it
    assert f'action="/referrals/{CID}/revoke"' in html
    assert f'action="/referrals/{CID}/close"' in html
    assert f'action="/referrals/{CID}/link"' in html
    assert f'action="/referrals/{CID}/dismiss_duplicate"' in html


def test_no_close_or_link_while_an_agency_works_on_it():
    referral = Referral(detail=detail(stage="in_care", working=True))
    html = html_of(
        intake_pages.detail_page(exchange("intake"), CID, referral.referral_detail, names)
    )
    assert f'action="/referrals/{CID}/close"' not in html
    assert f'action="/referrals/{CID}/link"' not in html


def test_a_coordinator_never_reaches_the_referral_page():
    referral = Referral(detail=detail())
    with pytest.raises(kit.Forbidden):
        intake_pages.detail_page(exchange("coordinator"), CID, referral.referral_detail, names)
    assert referral.calls == []


def act(action, form, refuse=None, referral=None):
    referral = referral or Referral(detail=detail(), refuse=refuse)
    ex = exchange("intake", method="POST", data={"csrf_token": "nonce.signature", **form})
    response = intake_pages.act(ex, CsrfAlwaysMatches(), CID, action, referral, names)
    return response, referral


def test_keeping_this_referral_closes_the_other_as_its_duplicate():
    response, referral = act("link", {"other": OTHER, "keep": "this"})
    assert referral.calls == [("link_duplicate", (OTHER, {"duplicate_of": CID}))]
    assert response.location == f"/referrals/{CID}?notice=linked"
    _, referral = act("link", {"other": OTHER, "keep": "other"})
    assert referral.calls == [("link_duplicate", (CID, {"duplicate_of": OTHER}))]


def test_a_refused_action_is_shown_next_to_its_form_and_changes_nothing():
    refusal = kit.BadInput({"legal_basis": ["Missing data for required field."]})
    response, referral = act("reroute", {"agencies": "justice"}, refuse=refusal)
    html = html_of(response)
    assert response.status_code == 422
    assert referral.calls[0] == ("reroute", (CID, {"agencies": ["justice"]}))
    assert 'id="reroute-legal_basis-error"' in html
    assert "Choose the legal basis for sharing without consent." in html


def test_an_action_the_state_no_longer_allows_says_so():
    response, _ = act("close", {"reason": "duplicate"}, refuse=kit.Conflict("in care"))
    assert response.location == f"/referrals/{CID}?notice=action_conflict"
    response, _ = act("close", {"reason": "duplicate"}, refuse=kit.Conflict("wrong_state", "x"))
    assert response.location == f"/referrals/{CID}?notice=action_conflict"


def test_an_action_the_hub_refuses_for_a_reason_of_its_own_says_which():
    working = kit.Conflict("agency_working", "an agency is working on it")
    response, _ = act("close", {"reason": "duplicate"}, refuse=working)
    assert response.location == f"/referrals/{CID}?notice=conflict_agency_working"
    shown = exchange("social", "notice=conflict_agency_working", path="/")
    page = pages.waiting_list(shown, lambda query: {"items": [], "next_cursor": None})
    assert "it closes its own record" in html_of(page)


def test_a_forged_form_does_nothing():
    referral = Referral(detail=detail())
    ex = exchange("intake", method="POST", data={"csrf_token": "forged", "reason": "duplicate"})
    response = intake_pages.act(ex, CsrfAlwaysMatches(), CID, "close", referral, names)
    assert response.location.endswith("notice=form_expired") and referral.calls == []


def test_a_stale_page_marker_starts_the_stage_again_from_its_first_page():
    class StaleCursor(Referral):
        def pipeline(self, query):
            if "cursor" in query:
                raise kit.BadInput({"cursor": ["Not a valid cursor."]})
            return super().pipeline(query)

    ex = exchange(query="stage=routed&urgency=high&cursor=from-last-year")
    response = board_pages.board(ex, StaleCursor(), now=lambda: NOW)
    assert response.status_code == 303
    assert response.location == "/pipeline?stage=routed&urgency=high"


def test_empty_filters_from_the_form_are_dropped_from_the_address():
    ex = exchange(query="stage=&urgency=high&agency=&received_from=&lang=fr")
    response = board_pages.board(ex, Referral(), now=lambda: NOW)
    assert response.status_code == 303 and response.location == "/pipeline?urgency=high"


def test_a_form_sent_twice_shows_the_one_referral_it_registered():
    response, calls = submit(
        FILLED.to_dict(flat=False),
        service=lambda s: {"coordination_id": CID, "replayed": True},
    )
    assert response.location == f"/referrals/{CID}/receipt?notice=replayed"
    assert calls[0]["idempotency_key"] == "form-1"


def test_the_receipt_says_where_the_referral_went():
    row = item(flags=["possible_duplicate"])
    html = html_of(intake_pages.receipt(exchange("intake"), CID, lambda cid: row))
    assert f'href="/referrals/{CID}"' in html  # the intake officer may open it
    assert "Social services: Awaiting acceptance" in html
    assert 'data-flag="possible_duplicate"' in html
    with pytest.raises(kit.Forbidden):
        intake_pages.receipt(exchange("coordinator"), CID, lambda cid: row)


def test_an_expired_form_keeps_what_was_typed_and_registers_nothing():
    form = FILLED.copy()
    form["csrf_token"] = "from-yesterday"
    response, calls = submit(form.to_dict(flat=False))
    html = html_of(response)
    assert response.status_code == 400 and calls == []
    assert "The form had expired, so nothing was registered." in html
    assert 'value="Talo"' in html and "Kadorni suvek talomen." in html
    assert 'name="csrf_token" value="nonce.signature"' in html  # a token that will pass


def test_every_listed_static_file_exists():
    for name in pages.STATIC_FILES:
        assert pages.static_file(name).status_code == 200, name
