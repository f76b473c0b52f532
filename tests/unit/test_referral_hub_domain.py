"""The referral hub's rules for issue 3, no I/O: what each channel must carry, triage,
routing rules as data, the acceptance state machine, SLA clocks (a controllable clock:
every time is given), flags, the timeline, the pipeline cursor, duplicate keys, and the
importer's reading of a JSON-lines file."""

import base64
import contextlib
import datetime as dt
import json
import uuid
from pathlib import Path

import pytest
import yaml

from concord_cli import importer
from concord_contracts.cases import ConflictCode
from concord_contracts.channels import channel_errors
from concord_contracts.codes import (
    AgeBand,
    AgeingBucket,
    Agency,
    AgencyStatus,
    Annotation,
    CaseStatus,
    Category,
    Channel,
    CloseReason,
    DeclineReason,
    Flag,
    HopKind,
    RevokeReason,
    RiskIndicator,
    Stage,
    Urgency,
)
from concord_contracts.rpc import ReferralSubmissionSchema
from referral import domain
from referral.domain import (
    Cursor,
    IntakeCursor,
    Pipeline,
    ReferralFacts,
    RefusedTransition,
    SlaPolicy,
    age_band,
    ageing_bucket,
    identity_keys,
    parse_routing_rules,
    route,
    timeline,
    triage,
)
from referral.settings import InvalidSettings, load_routing_rules, load_sla
from tests.synthetic import make_platform_report, make_referral, make_self_report

pytestmark = pytest.mark.unit

T0 = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
SLA = domain.DEFAULT_SLA


def facts(*categories, urgency=Urgency.normal, channel=Channel.helpline, **extra):
    return ReferralFacts(channel, tuple(categories), urgency, **extra)


def routed(*agencies, urgency=Urgency.normal, at=T0) -> Pipeline:
    referral = facts(Category.grooming, urgency=urgency)
    decision = domain.RoutingDecision(tuple(agencies), "test_rule")
    return Pipeline.open(uuid.uuid4(), referral, decision, at, SLA)


# --- what each channel must carry -----------------------------------------------------------


def test_a_childs_own_report_may_carry_almost_nothing():
    assert channel_errors({"channel": "child_self_report", "categories": ["grooming"]}) == {}
    ReferralSubmissionSchema().load(make_self_report(seed=1))


def test_a_helpline_referral_names_the_child():
    errors = channel_errors({"channel": "helpline", "child": {"sex": "male"}})
    assert set(errors) == {"reporter", "summary", "consent", "child"}
    assert set(errors["child"]) == {"given_name", "date_of_birth"}


def test_a_platform_report_carries_its_codes_and_only_it_does():
    errors = channel_errors({"channel": "platform_report", "consent": {"status": "given"}})
    assert set(errors) == {"platform", "incident_type"}
    ReferralSubmissionSchema().load(make_platform_report(seed=2))
    helpline = channel_errors(
        {**make_referral(seed=3, channel="helpline"), "annotations": ["generative_ai"]}
    )
    assert set(helpline) == {"annotations"}


def test_a_request_from_abroad_names_the_country():
    assert set(channel_errors({"channel": "another_country"})) == {
        "requesting_country",
        "summary",
        "consent",
    }


def test_the_channel_fills_in_who_reported():
    completed = domain.complete_for_channel({"channel": Channel.platform_report, "reporter": None})
    assert completed["reporter"]["kind"] == "platform"
    same = {"channel": Channel.helpline, "reporter": {"kind": "teacher"}}
    assert domain.complete_for_channel(same) == same


# --- triage -------------------------------------------------------------------------------


def test_a_sextortion_with_a_deadline_is_urgent():
    result = triage(Urgency.normal, [Category.sextortion], [RiskIndicator.deadline_threat])
    assert (result.urgency, result.rule) == (Urgency.immediate_danger, "sextortion_with_deadline")
    by_annotation = triage(None, [Category.grooming], [RiskIndicator.deadline_threat], [
        Annotation.sextortion
    ])  # fmt: skip
    assert by_annotation.urgency == Urgency.immediate_danger
    assert triage(None, [Category.grooming], [RiskIndicator.deadline_threat]).rule is None


def test_immediate_danger_stated_or_noticed_is_urgent():
    assert triage(None, [Category.grooming], [RiskIndicator.immediate_danger]).urgency == (
        Urgency.immediate_danger
    )
    assert triage(Urgency.immediate_danger, [Category.grooming]).rule is None  # as stated


def test_platform_escalation_raises_to_high_never_lowers():
    raised = triage(Urgency.normal, [Category.csam_possession], (), [
        Annotation.escalate_to_high_priority
    ])  # fmt: skip
    assert (raised.urgency, raised.rule) == (Urgency.high, "platform_escalation")
    kept = triage(Urgency.immediate_danger, [Category.csam_possession], (), [
        Annotation.escalate_to_high_priority
    ])  # fmt: skip
    assert (kept.urgency, kept.rule) == (Urgency.immediate_danger, None)
    assert triage(None, [Category.cyberstalking]).urgency == Urgency.normal


def test_the_most_urgent_rule_that_holds_decides():
    result = triage(
        Urgency.normal,
        [Category.livestreamed_abuse],
        [RiskIndicator.self_harm_risk, RiskIndicator.offender_has_access],
    )
    assert (result.urgency, result.rule) == (Urgency.immediate_danger, "self_harm_risk")


# --- routing rules as data ---------------------------------------------------------------


def test_the_shipped_routing_file_is_valid_and_routes_sensibly():
    rules = load_routing_rules()
    assert rules[-1].condition.is_catch_all
    stalking = route(facts(Category.cyberstalking), rules)
    assert (stalking.agencies, stalking.rule) == ((Agency.social_services,), "child_protection")
    danger = route(facts(Category.cyberstalking, urgency=Urgency.immediate_danger), rules)
    assert danger.agencies == (Agency.social_services, Agency.justice)
    unknown_child = facts(Category.csam_distribution, channel=Channel.platform_report,
                          child_identified=False)  # fmt: skip
    assert route(unknown_child, rules).agencies == (Agency.justice,)
    for category in domain.SEXUAL_EXPLOITATION_CATEGORIES:
        assert route(facts(category), rules).agencies == (Agency.social_services, Agency.justice)


def test_a_rule_may_test_the_age_band_and_hold_a_referral():
    rules = parse_routing_rules(
        {
            "version": 1,
            "rules": [
                {"code": "young", "when": {"age_bands": ["under_13"]}, "route_to": []},
                {"code": "rest", "route_to": ["social_services"]},
            ],
        }
    )
    assert route(facts(Category.grooming, age_band=AgeBand.under_13), rules).agencies == ()
    assert route(facts(Category.grooming, age_band=AgeBand.unknown), rules).rule == "rest"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ([], "the file"),
        ({"version": 2, "rules": [{"code": "a", "route_to": []}]}, "version"),
        ({"version": 1, "rules": []}, "rules"),
        ({"version": 1, "rules": [{"code": "Bad Code", "route_to": []}]}, "code"),
        (
            {
                "version": 1,
                "rules": [
                    {"code": "a", "when": {"channels": ["helpline"]}, "route_to": ["justice"]},
                    {"code": "a", "route_to": ["justice"]},
                ],
            },
            "used twice",
        ),
        ({"version": 1, "rules": [{"code": "a", "route_to": ["police"]}]}, "unknown code"),
        (
            {"version": 1, "rules": [{"code": "a", "when": {"moon": ["full"]}, "route_to": []}]},
            "unknown condition",
        ),
        (
            {"version": 1, "rules": [{"code": "a", "when": {"channels": []}, "route_to": []}]},
            "non-empty list",
        ),
        (
            {
                "version": 1,
                "rules": [{"code": "a", "when": {"urgencies": ["high"]}, "route_to": []}],
            },
            "last rule",
        ),
        (
            {
                "version": 1,
                "rules": [
                    {"code": "a", "route_to": []},
                    {"code": "b", "route_to": ["justice"]},
                ],
            },
            "only the last rule",
        ),
        ({"version": 1, "rules": [{"code": "a"}]}, "route_to"),
        (
            {
                "version": 1,
                "rules": [{"code": "a", "when": {"child_identified": "yes"}, "route_to": []}],
            },
            "true or false",
        ),
        (
            {"version": 1, "rules": [{"code": "intake_officer_decision", "route_to": []}]},
            "reserved",
        ),
    ],
)
def test_a_bad_routing_table_is_refused_naming_each_problem(data, problem):
    with pytest.raises(domain.InvalidRoutingRules) as refused:
        parse_routing_rules(data)
    assert problem in str(refused.value)


def test_a_bad_routing_file_stops_the_start_with_a_clear_message(tmp_path):
    path = Path(tmp_path) / "rules.yaml"
    path.write_text("version: 1\nrules:\n  - code: a\n    route_to: [nobody]\n")
    with pytest.raises(InvalidSettings) as refused:
        load_routing_rules(path)
    assert str(path) in str(refused.value) and "nobody" in str(refused.value)
    path.write_text("version: 1\nrules: [\n")
    with pytest.raises(InvalidSettings, match="not YAML at line"):
        load_routing_rules(path)
    with pytest.raises(InvalidSettings, match="cannot read"):
        load_routing_rules(Path(tmp_path) / "missing.yaml")
    shipped = yaml.safe_load(Path(domain.__file__).with_name("routing_rules.yaml").read_text())
    assert parse_routing_rules(shipped) == load_routing_rules()


# --- SLA clocks (the clock is an argument) -----------------------------------------------


def test_acceptance_is_due_by_urgency_and_agency():
    policy = SlaPolicy.from_settings(
        {"immediate_danger": 7200, "high": 86400, "normal": 259200},
        {"justice": {"immediate_danger": 3600}},
    )
    assert policy.due(Agency.social_services, Urgency.immediate_danger, T0) == T0 + 2 * HOUR
    assert policy.due(Agency.justice, Urgency.immediate_danger, T0) == T0 + HOUR
    assert policy.due(Agency.justice, Urgency.normal, T0) == T0 + 72 * HOUR


@pytest.mark.parametrize(
    ("acceptance", "by_agency", "problem"),
    [
        ({"high": 1, "normal": 1}, None, "missing immediate_danger"),
        ({"immediate_danger": 1, "high": 1, "normal": "soon"}, None, "normal"),
        ({"immediate_danger": 1, "high": 1, "normal": 0}, None, "positive"),
        ({"immediate_danger": 1, "high": 1, "normal": 1, "later": 5}, None, "later"),
        ({"immediate_danger": 1, "high": 1, "normal": 1}, {"police": {"high": 1}}, "police"),
    ],
)
def test_a_bad_sla_setting_stops_the_start(acceptance, by_agency, problem):
    with pytest.raises(InvalidSettings, match=problem):
        load_sla(acceptance, by_agency)


def test_a_clock_that_runs_out_raises_the_flag_once():
    row = routed(Agency.social_services, Agency.justice, urgency=Urgency.immediate_danger)
    due = T0 + 2 * HOUR
    assert row.due_at == due and not row.overdue
    assert row.run_clocks(due - dt.timedelta(seconds=1)) == []
    escalated = row.run_clocks(due)
    assert [s.agency for s in escalated] == [Agency.social_services, Agency.justice]
    assert row.flags == [Flag.awaiting_acceptance_overdue] and row.overdue
    assert row.run_clocks(due + HOUR) == []  # marked once
    assert [h.kind for h in row.hops].count(HopKind.escalated) == 2


def test_an_answer_stops_the_clock_and_clears_the_flag():
    row = routed(Agency.social_services)
    row.run_clocks(T0 + 100 * HOUR)
    assert row.overdue
    report = domain.read_partner_report(
        "case.opened", {"case_id": uuid.uuid4(), "status": CaseStatus.new, "opened_at": T0}
    )
    row.apply(report, sequence=1)
    assert not row.overdue and row.flags == []
    assert row.agencies[Agency.social_services].due_at is None


def test_a_request_abroad_past_its_deadline_is_flagged_without_escalation():
    row = routed(Agency.justice)
    report = domain.read_partner_report(
        "request.filed",
        {
            "request_id": uuid.uuid4(),
            "status": "sent",
            "due_at": T0 + 10 * HOUR,
            "filed_at": T0 + HOUR,
        },
    )
    row.apply(report, sequence=1)
    assert row.run_clocks(T0 + 11 * HOUR) == []  # no acceptance was awaited from abroad
    assert Flag.request_abroad_overdue in row.flags
    assert Flag.awaiting_acceptance_overdue not in row.flags


# --- the acceptance state machine -------------------------------------------------------------


@contextlib.contextmanager
def refused_as(code: ConflictCode):
    """The change inside is refused with `code` (the JSON `error.code` of its 409)."""
    with pytest.raises(RefusedTransition) as refused:
        yield
    assert refused.value.code == code


def test_decline_by_all_goes_back_to_intake_and_reroute_starts_a_new_clock():
    row = routed(Agency.social_services)
    row.decline(Agency.social_services, DeclineReason.better_agency, Agency.justice, T0 + HOUR)
    state = row.agencies[Agency.social_services]
    assert (state.status, state.due_at, state.suggested_agency) == (
        AgencyStatus.declined,
        None,
        Agency.justice,
    )
    assert row.stage == Stage.triaged and row.stage_since == T0 + HOUR
    assert row.flags == [Flag.declined_by_all, Flag.awaiting_routing]
    with refused_as(ConflictCode.wrong_state):
        row.decline(Agency.social_services, DeclineReason.no_capacity, None, T0 + HOUR)

    assert row.route([Agency.justice], domain.MANUAL_RULE, T0 + 2 * HOUR, SLA) == (Agency.justice,)
    assert row.stage == Stage.routed and row.flags == []
    assert row.agencies[Agency.justice].due_at == T0 + 2 * HOUR + 72 * HOUR
    with refused_as(ConflictCode.already_with_agency):
        row.route([Agency.justice], domain.MANUAL_RULE, T0 + 3 * HOUR, SLA)
    # The one that declined may be asked again.
    row.route([Agency.social_services], domain.MANUAL_RULE, T0 + 3 * HOUR, SLA)
    assert row.agencies[Agency.social_services].status == AgencyStatus.pending_acceptance


def test_one_decline_among_several_keeps_the_referral_routed():
    row = routed(Agency.social_services, Agency.justice)
    row.decline(Agency.justice, DeclineReason.outside_mandate, None, T0 + HOUR)
    assert row.stage == Stage.routed and row.flags == []


def test_revoke_only_what_waits_for_an_answer():
    row = routed(Agency.social_services, Agency.justice)
    row.revoke(Agency.justice, RevokeReason.routed_in_error, T0 + HOUR)
    assert row.agencies[Agency.justice].status == AgencyStatus.revoked
    with refused_as(ConflictCode.wrong_state):
        row.revoke(Agency.justice, None, T0 + HOUR)
    with refused_as(ConflictCode.wrong_state):
        row.revoke(Agency.cross_border, None, T0 + HOUR)
    row.apply(
        domain.read_partner_report(
            "case.opened", {"case_id": uuid.uuid4(), "status": CaseStatus.new, "opened_at": T0}
        ),
        sequence=1,
    )
    with refused_as(ConflictCode.wrong_state):
        row.revoke(Agency.social_services, None, T0 + HOUR)  # already working on it


def test_close_revokes_what_waits_and_refuses_while_an_agency_works():
    row = routed(Agency.social_services, Agency.justice)
    assert row.close(CloseReason.no_further_action, T0 + HOUR) == (
        Agency.social_services,
        Agency.justice,
    )
    assert row.stage == Stage.closed and row.close_reason == CloseReason.no_further_action
    assert row.flags == []
    with refused_as(ConflictCode.wrong_state):
        row.close(CloseReason.duplicate, T0 + HOUR)
    with refused_as(ConflictCode.wrong_state):
        row.route([Agency.justice], domain.MANUAL_RULE, T0 + HOUR, SLA)

    working = routed(Agency.social_services)
    working.apply(
        domain.read_partner_report(
            "case.opened", {"case_id": uuid.uuid4(), "status": CaseStatus.new, "opened_at": T0}
        ),
        sequence=1,
    )
    with refused_as(ConflictCode.agency_working):
        working.close(CloseReason.no_further_action, T0 + HOUR)


def test_a_linked_duplicate_is_closed_under_the_one_kept():
    row = routed(Agency.social_services)
    primary = uuid.uuid4()
    row.link_to(primary, T0 + HOUR)
    assert (row.stage, row.close_reason, row.linked_to) == (
        Stage.closed,
        CloseReason.duplicate,
        primary,
    )
    itself = routed(Agency.justice)
    with refused_as(ConflictCode.wrong_state):
        itself.link_to(itself.coordination_id, T0)


def test_a_referral_held_without_routing_waits_for_intake():
    row = Pipeline.open(
        uuid.uuid4(), facts(Category.grooming), domain.RoutingDecision((), "held"), T0, SLA
    )
    assert row.stage == Stage.triaged and row.flags == [Flag.awaiting_routing]
    assert row.due_at is None


def test_every_agency_closing_closes_the_referral_and_reopening_reopens_it():
    row = routed(Agency.social_services)
    for sequence, status in ((1, CaseStatus.new), (2, CaseStatus.closed)):
        row.apply(
            domain.read_partner_report(
                "case.status_changed",
                {"case_id": uuid.uuid4(), "status": status, "changed_at": T0 + sequence * HOUR},
            ),
            sequence=sequence,
        )
    assert row.stage == Stage.closed and row.closed_at == T0 + 2 * HOUR
    assert row.close_reason is None  # closed by the agencies, not by the hub
    row.apply(
        domain.read_partner_report(
            "case.status_changed",
            {"case_id": uuid.uuid4(), "status": CaseStatus.assessed, "changed_at": T0 + 3 * HOUR},
        ),
        sequence=3,
    )
    assert row.stage == Stage.in_care and row.closed_at is None


# --- the timeline ---------------------------------------------------------------------------


def test_the_timeline_says_how_long_each_hop_lasted():
    row = routed(Agency.social_services)
    row.decline(Agency.social_services, DeclineReason.no_capacity, None, T0 + 3 * HOUR)
    row.route([Agency.justice], domain.MANUAL_RULE, T0 + 5 * HOUR, SLA)
    hops = timeline(row.hops, now=T0 + 6 * HOUR)
    assert [(h["kind"], h["agency"]) for h in hops] == [
        (HopKind.received, None),
        (HopKind.triaged, None),
        (HopKind.routed, Agency.social_services),
        (HopKind.declined, Agency.social_services),
        (HopKind.routed, Agency.justice),
    ]
    spent = {(h["kind"], h["agency"]): (h["time_spent_seconds"], h["ongoing"]) for h in hops}
    assert spent[(HopKind.routed, Agency.social_services)] == (3 * 3600, False)
    assert spent[(HopKind.declined, Agency.social_services)] == (0, False)  # an end
    assert spent[(HopKind.routed, Agency.justice)] == (3600, True)  # still waiting
    assert spent[(HopKind.triaged, None)] == (6 * 3600, True)


def test_an_agency_clock_behind_the_hub_never_gives_a_negative_time():
    hops = [
        domain.Hop(T0, HopKind.routed, Agency.justice),
        domain.Hop(T0 - HOUR, HopKind.accepted, Agency.justice),
    ]
    assert timeline(hops, T0)[0]["time_spent_seconds"] == 0


# --- the pipeline ---------------------------------------------------------------------------


def test_a_cursor_comes_back_as_it_went_and_nothing_else_passes():
    cursor = Cursor("priority", 1, T0, str(uuid.uuid4()))
    assert Cursor.decode(cursor.encode(), "priority") == cursor
    for text, sort in (
        (cursor.encode(), "newest"),
        ("not a cursor", "priority"),
        ("bm90LWEtY3Vyc29y", "priority"),
        ("", "priority"),
    ):
        with pytest.raises(ValueError):
            Cursor.decode(text, sort)


def intake_item(status=AgencyStatus.pending_acceptance, urgency=Urgency.high, at=T0):
    """An intake queue item as the repository reads it (the fields its place needs)."""
    return {
        "coordination_id": uuid.uuid4(),
        "status": status,
        "urgency": urgency,
        "received_at": at,
    }


def test_an_intake_cursor_is_the_full_key_of_the_queue_order():
    waiting = IntakeCursor.of(intake_item())
    assert (waiting.waiting, waiting.urgency_rank, waiting.received_at) == (True, 1, T0)
    answered = IntakeCursor.of(intake_item(AgencyStatus.declined, Urgency.immediate_danger))
    assert (answered.waiting, answered.urgency_rank) == (False, 0)
    for cursor in (waiting, answered):
        assert IntakeCursor.decode(cursor.encode()) == cursor


def pack(*parts):
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode()


@pytest.mark.parametrize(
    "text",
    [
        Cursor("priority", 1, T0, str(uuid.uuid4())).encode(),  # the pipeline's
        "",
        "not a cursor",
        "bm90LWEtY3Vyc29y",
        pack("waiting", 1, T0.isoformat()),
        pack("waiting", 1, T0.isoformat(), str(uuid.uuid4()), "more"),
        pack("waiting", 7, T0.isoformat(), str(uuid.uuid4())),  # no such urgency
        pack("waiting", True, T0.isoformat(), str(uuid.uuid4())),
        pack("waiting", "1", T0.isoformat(), str(uuid.uuid4())),
        pack("waiting", 1, "2026-11-23T09:00:00", str(uuid.uuid4())),  # no offset
        pack("waiting", 1, "yesterday", str(uuid.uuid4())),
        pack("waiting", 1, T0.isoformat(), 42),
        pack("waiting", 1, T0.isoformat(), "42"),
        pack("pending", 1, T0.isoformat(), str(uuid.uuid4())),
        pack(["waiting"], 1, T0.isoformat(), str(uuid.uuid4())),
        pack({"waiting": 1}),
    ],
)
def test_a_tampered_intake_cursor_is_refused(text):
    with pytest.raises(ValueError):
        IntakeCursor.decode(text)


@pytest.mark.parametrize(
    ("waited", "bucket"),
    [
        (dt.timedelta(minutes=5), AgeingBucket.under_2_hours),
        (2 * HOUR, AgeingBucket.hours_2_to_24),
        (dt.timedelta(days=2), AgeingBucket.days_1_to_3),
        (dt.timedelta(days=5), AgeingBucket.days_3_to_7),
        (dt.timedelta(days=29), AgeingBucket.days_7_to_30),
        (dt.timedelta(days=400), AgeingBucket.over_30_days),
    ],
)
def test_ageing_buckets(waited, bucket):
    assert ageing_bucket(waited) == bucket


def test_the_version_token_changes_with_time_and_with_late_commits():
    assert domain.pipeline_version(None) == "0"
    assert domain.pipeline_version(T0, 3) != domain.pipeline_version(T0, 4)
    assert domain.pipeline_version(T0, 3) != domain.pipeline_version(T0 + HOUR, 3)


def test_flags_have_one_bit_each():
    assert len(set(domain.FLAG_BITS.values())) == len(Flag)
    assert (
        domain.mask([Flag.awaiting_acceptance_overdue, Flag.declined_by_all], domain.FLAG_BITS)
        == 0b11
    )


def test_a_row_is_found_by_its_categories_agencies_and_their_statuses():
    row = routed(Agency.social_services, Agency.justice)
    row.decline(Agency.justice, DeclineReason.outside_mandate, None, T0 + HOUR)
    assert domain.facets(row) == {
        "category:grooming",
        "agency:social_services",
        "agency:social_services:pending_acceptance",
        "status:pending_acceptance",
        "agency:justice",
        "agency:justice:declined",
        "status:declined",
    }
    query = domain.PipelineFilters(
        categories=frozenset({Category.grooming}),
        agencies=frozenset({Agency.justice}),
        agency_statuses=frozenset({AgencyStatus.declined, AgencyStatus.revoked}),
    )
    assert domain.facet_filter(query) == [
        {"category:grooming"},
        {"agency:justice:declined", "agency:justice:revoked"},
    ]
    only_status = domain.PipelineFilters(agency_statuses=frozenset({AgencyStatus.declined}))
    assert domain.facet_filter(only_status) == [{"status:declined"}]


def test_a_row_is_counted_under_every_filter_value_it_holds():
    row = routed(Agency.social_services, Agency.justice)
    row.decline(Agency.justice, DeclineReason.outside_mandate, None, T0 + HOUR)
    assert domain.count_keys(row) == {
        "all",
        f"urgency:{row.urgency.value}",
        f"channel:{row.channel.value}",
        *(f"flag:{f.value}" for f in row.flags),
        *domain.facets(row),
    }


@pytest.mark.parametrize(
    ("filters", "keys"),
    [
        ({}, ["all"]),
        ({"stages": {Stage.routed}}, ["all"]),
        (
            {"urgencies": {Urgency.high, Urgency.immediate_danger}},
            ["urgency:high", "urgency:immediate_danger"],
        ),
        ({"channels": {Channel.helpline}, "stages": {Stage.closed}}, ["channel:helpline"]),
        ({"flags": {Flag.awaiting_acceptance_overdue}}, ["flag:awaiting_acceptance_overdue"]),
        ({"categories": {Category.grooming}}, ["category:grooming"]),
        (
            {
                "agencies": {Agency.social_services},
                "agency_statuses": {AgencyStatus.pending_acceptance},
            },
            ["agency:social_services:pending_acceptance"],
        ),
        # A row may hold both: their counts would add it twice.
        ({"categories": {Category.grooming, Category.sextortion}}, None),
        ({"flags": {Flag.declined_by_all, Flag.awaiting_routing}}, None),
        # Two filters together, or a time range: only the rows can tell.
        ({"urgencies": {Urgency.high}, "channels": {Channel.helpline}}, None),
        ({"categories": {Category.grooming}, "flags": {Flag.declined_by_all}}, None),
        ({"received_from": T0}, None),
    ],
)
def test_the_kept_counts_answer_one_filter_exactly_and_nothing_else(filters, keys):
    query = domain.PipelineFilters(
        **{k: frozenset(v) if isinstance(v, set) else v for k, v in filters.items()}
    )
    assert domain.counted_keys(query) == keys


def test_a_change_moves_the_counts_of_the_old_stage_and_keys_to_the_new():
    before = (Stage.routed, {"all", "urgency:high", "status:pending_acceptance"})
    after = (Stage.routed, {"all", "urgency:high", "status:declined"})
    assert domain.count_changes(before, after) == {
        (Stage.routed, "status:pending_acceptance"): -1,
        (Stage.routed, "status:declined"): 1,
    }
    closed = (Stage.closed, {"all", "urgency:high"})
    assert domain.count_changes(after, closed) == {
        (Stage.routed, "all"): -1,
        (Stage.routed, "urgency:high"): -1,
        (Stage.routed, "status:declined"): -1,
        (Stage.closed, "all"): 1,
        (Stage.closed, "urgency:high"): 1,
    }
    assert domain.count_changes(None, closed) == {
        (Stage.closed, "all"): 1,
        (Stage.closed, "urgency:high"): 1,
    }
    assert domain.count_changes(closed, closed) == {}


def test_the_funnel_counts_the_stages_reached_not_the_stage_a_row_is_in():
    row = routed(Agency.social_services)
    assert domain.reached(row) == {Stage.triaged, Stage.routed}
    row.close(CloseReason.no_further_action, T0 + HOUR)
    assert domain.reached(row) == {Stage.triaged, Stage.routed, Stage.closed}
    # Closed at triage: it never reached routed.
    assert domain.stored_reached(T0, None, None, T0 + HOUR) == {Stage.triaged, Stage.closed}

    before = (Stage.routed, {Stage.triaged, Stage.routed}, {"all", "urgency:high"})
    after = (Stage.in_care, {Stage.triaged, Stage.routed, Stage.in_care}, {"all", "urgency:high"})
    moved = domain.funnel_changes(before, after)
    assert moved == {
        **{(Stage.routed, step, key): -1 for step in before[1] for key in before[2]},
        **{(Stage.in_care, step, key): 1 for step in after[1] for key in after[2]},
    }
    # A new key in the same stage: only that key's steps move.
    flagged = (Stage.in_care, after[1], {*after[2], "flag:possible_duplicate"})
    assert domain.funnel_changes(after, flagged) == {
        (Stage.in_care, step, "flag:possible_duplicate"): 1 for step in after[1]
    }
    assert domain.funnel_changes(None, before) == {
        (Stage.routed, step, key): 1 for step in before[1] for key in before[2]
    }
    assert domain.funnel_changes(after, after) == {}


# --- ages and duplicates --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("child", "band"),
    [
        (None, AgeBand.unknown),
        ({"given_name": "Talo"}, AgeBand.unknown),
        ({"age_years": 12}, AgeBand.under_13),
        ({"age_years": 13}, AgeBand.age_13_to_15),
        ({"age_years": 17}, AgeBand.age_16_to_17),
        ({"date_of_birth": dt.date(2013, 11, 24)}, AgeBand.under_13),  # 13 tomorrow
        ({"date_of_birth": "2013-11-23"}, AgeBand.age_13_to_15),
    ],
)
def test_age_band(child, band):
    assert age_band(child, T0.date()) == band


def test_identity_keys_forgive_spelling_and_bridge_age_and_birth_date():
    on = T0.date()
    born = identity_keys(
        {"given_name": "Télo", "family_name": "Men-Rik", "date_of_birth": dt.date(2012, 3, 4)}, on
    )
    aged = identity_keys({"given_name": " telo ", "family_name": "MENRIK", "age_years": 14}, on)
    assert "child:telo|menrik|dob:2012-03-04" in born
    assert set(born) & set(aged) == {"child:telo|menrik|born:2012"}
    # A child's own report may give the first name and the birthday only.
    first_name_only = identity_keys({"given_name": "TELO", "date_of_birth": "2012-03-04"}, on)
    assert first_name_only == ["child:telo|dob:2012-03-04"]
    assert first_name_only[0] in born
    assert identity_keys({"given_name": "Telo"}, on) == []  # a first name alone: no key
    assert identity_keys({"given_name": "Telo", "age_years": 14}, on) == []
    assert identity_keys(None, on) == []


def test_possible_duplicates_come_from_another_channel_close_in_time():
    assert domain.is_possible_duplicate(Channel.helpline, T0, Channel.school, T0 + 24 * HOUR)
    assert not domain.is_possible_duplicate(Channel.helpline, T0, Channel.helpline, T0)
    assert not domain.is_possible_duplicate(
        Channel.helpline, T0, Channel.school, T0 + dt.timedelta(days=31)
    )


# --- the importer ---------------------------------------------------------------------------


def test_the_importer_reads_lines_and_counts_each_outcome():
    lines = list(
        importer.read_lines([b'{"a": 1}\n', b"\n", b"{not json\n", b'{"b": NaN}\n', b'{"c": 2}\n'])
    )
    assert [(line.number, line.problem is None) for line in lines] == [
        (1, True),
        (3, False),
        (4, False),
        (5, True),
    ]
    calls = []

    def submit(reports):
        calls.append(reports)
        return {
            "results": [
                {"status": "created"}
                if "a" in r
                else {"status": "rejected", "errors": {"c": ["x"]}}
                for r in reports
            ]
        }

    seen = []
    tally = importer.import_reports(lines, submit, chunk_size=3, progress=seen.append)
    assert calls == [[{"a": 1}], [{"c": 2}]]
    assert (tally.created, tally.replayed, tally.rejected) == (1, 0, 3)
    assert [line for line, _ in tally.rejections] == [3, 4, 5]
    assert sum(seen) == 4


def test_the_importer_names_fields_never_values():
    errors = {"child": {"given_name": ["Longer than 100."]}, "summary": ["Contains control."]}
    assert importer.field_names(errors) == ["child.given_name", "summary"]
    assert importer.importer_identity("ops")["user_id"] == "import:ops"
