"""The referral hub's work, in plain Python (no nameko, no SQL).

A referral reaches the hub from a helpline, a hotline, a school, a platform report...
The hub checks that it carries what its channel must carry, triages it (how urgent),
decides which agencies must act on it (routing, by rules that are data), and then keeps
one *pipeline row* per referral: where the child's matter stands overall (the stage) and,
for each agency, its own status and since when. An agency accepts (by opening its record)
or declines with a reason; the hub may revoke a routing, re-route, or close the referral.
Acceptance is due within a time set per urgency (the SLA clock); a clock that runs out
raises a flag. The agencies report their statuses as events; the hub never sees their
records, and they see the referral's details only when it was routed to them.

The words used here:

- *coordination id*: the random identifier the hub gives a referral; the only key the
  agencies share. It carries no meaning.
- *triage*: setting the urgency from what was stated plus rules (a child in immediate
  danger, a sextortion with a deadline threat...).
- *routing*: the decision that an agency must act on a referral, made by a rule.
- *agency status*: one agency's position on one referral (pending acceptance, case
  opened, declined, closed...).
- *stage*: the overall position of the referral (triaged, routed, in care, closed).
- *hop*: one step of the referral's timeline (routed to justice, accepted, declined...).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from concord_contracts.cases import ConflictCode
from concord_contracts.channels import channel_errors
from concord_contracts.codes import (
    SEXUAL_EXPLOITATION_CATEGORIES,
    AgeBand,
    AgeingBucket,
    Agency,
    AgencyStatus,
    Annotation,
    CaseStatus,
    Category,
    Channel,
    CloseReason,
    ConsentStatus,
    DeclineReason,
    Flag,
    HopKind,
    InvestigationStatus,
    LegalBasis,
    Organisation,
    ReporterKind,
    RequestStatus,
    RevokeReason,
    RiskIndicator,
    Role,
    Stage,
    Urgency,
)
from concord_contracts.fields import CODE_PATTERN
from concord_contracts.topology import URGENT_PRIORITY

# --- the referral as the hub routes it ---------------------------------------------------


@dataclass(frozen=True)
class ReferralFacts:
    """What triage and routing look at: how the referral came in, what harm it reports,
    how urgent, the child's age band and whether the child is identified.

    Never the child's or the reporter's identity: routing is decided on codes alone."""

    channel: Channel
    categories: tuple[Category, ...]
    urgency: Urgency
    age_band: AgeBand = AgeBand.unknown
    child_identified: bool = True


URGENCY_RANK: Mapping[Urgency, int] = {
    Urgency.immediate_danger: 0,
    Urgency.high: 1,
    Urgency.normal: 2,
}
"""Most urgent first: a child in immediate danger before everything else."""

EVENT_PRIORITY: Mapping[Urgency, int] = {
    Urgency.immediate_danger: URGENT_PRIORITY,
    Urgency.high: 5,
    Urgency.normal: 0,
}
"""The message priority of a referral's events. A child in immediate danger is urgent:
its events travel the urgent lane (concord_contracts.topology) and are never queued
behind a bulk import of platform reports."""


def most_urgent(*urgencies: Urgency) -> Urgency:
    return min(urgencies, key=URGENCY_RANK.__getitem__)


# --- what each channel must carry --------------------------------------------------------
# The table is in the contracts (`concord_contracts.channels`), so that the gateway and the
# hub refuse the same submissions; `ReferralSubmissionSchema` applies it.

missing_for_channel = channel_errors

CHANNEL_DEFAULT_REPORTER: Mapping[Channel, str] = {
    Channel.child_self_report: "child",
    Channel.platform_report: "platform",
}
"""Who reported, where the channel says it and the referral does not."""


def complete_for_channel(submission: dict[str, Any]) -> dict[str, Any]:
    """The submission with what its channel implies filled in (who reported)."""
    channel = Channel(submission["channel"])
    if submission.get("reporter") is None and channel in CHANNEL_DEFAULT_REPORTER:
        submission = {
            **submission,
            "reporter": {"kind": ReporterKind(CHANNEL_DEFAULT_REPORTER[channel]), "contact": None},
        }
    return submission


def child_identified(child: Mapping[str, Any] | None) -> bool:
    return bool(child and child.get("given_name"))


def age_band(child: Mapping[str, Any] | None, on: dt.date) -> AgeBand:
    """The child's age band on a day, from their age in years or date of birth."""
    if not child:
        return AgeBand.unknown
    years = child.get("age_years")
    born = child.get("date_of_birth")
    if years is None and born is not None:
        born = born if isinstance(born, dt.date) else dt.date.fromisoformat(str(born))
        years = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    if years is None:
        return AgeBand.unknown
    if years < 13:
        return AgeBand.under_13
    if years < 16:
        return AgeBand.age_13_to_15
    return AgeBand.age_16_to_17


# --- triage ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TriageRule:
    """When `holds` for a referral's categories, risk indicators and annotations, its
    urgency is at least `urgency`; the rule's code is recorded with the result."""

    code: str
    urgency: Urgency
    holds: Callable[[frozenset[Category], frozenset[RiskIndicator], frozenset[Annotation]], bool]
    description: str


def _sextortion(categories, annotations) -> bool:
    return Category.sextortion in categories or Annotation.sextortion in annotations


TRIAGE_RULES: tuple[TriageRule, ...] = (
    TriageRule(
        "immediate_danger_reported",
        Urgency.immediate_danger,
        lambda c, r, a: RiskIndicator.immediate_danger in r,
        "Whoever reported it says the child is in immediate danger.",
    ),
    TriageRule(
        "sextortion_with_deadline",
        Urgency.immediate_danger,
        lambda c, r, a: _sextortion(c, a) and RiskIndicator.deadline_threat in r,
        "A sextortion with a deadline threat: children have taken their lives within hours.",
    ),
    TriageRule(
        "self_harm_risk",
        Urgency.immediate_danger,
        lambda c, r, a: RiskIndicator.self_harm_risk in r,
        "The child may harm themselves.",
    ),
    TriageRule(
        "physical_harm_reported",
        Urgency.high,
        lambda c, r, a: (
            Annotation.physical_harm in a or Annotation.sadistic_online_exploitation in a
        ),
        "A platform reports physical harm or sadistic exploitation.",
    ),
    TriageRule(
        "platform_escalation",
        Urgency.high,
        lambda c, r, a: Annotation.escalate_to_high_priority in a,
        "The reporting platform asks for high priority.",
    ),
    TriageRule(
        "offender_has_access",
        Urgency.high,
        lambda c, r, a: RiskIndicator.offender_has_access in r or RiskIndicator.ongoing_abuse in r,
        "The abuse is going on, or the offender can reach the child.",
    ),
    TriageRule(
        "livestreamed_or_trafficking",
        Urgency.high,
        lambda c, r, a: bool({Category.livestreamed_abuse, Category.trafficking} & c),
        "Livestreamed abuse and trafficking are happening to a child now.",
    ),
)
"""Triage rules, most urgent first; the first that holds sets the floor of the urgency."""


@dataclass(frozen=True)
class Triage:
    stated: Urgency | None
    urgency: Urgency
    rule: str | None  # the rule that raised the urgency, None when the stated one stands


def triage(
    stated: Urgency | None,
    categories: Iterable[Category],
    risk_indicators: Iterable[RiskIndicator] = (),
    annotations: Iterable[Annotation] = (),
    rules: Iterable[TriageRule] = TRIAGE_RULES,
) -> Triage:
    """The referral's urgency: the stated one (normal if none), raised by the first rule
    that holds if that rule asks for more. Triage never lowers what a person stated."""
    base = stated or Urgency.normal
    found = (frozenset(categories), frozenset(risk_indicators), frozenset(annotations))
    for rule in rules:
        if rule.holds(*found):
            if URGENCY_RANK[rule.urgency] < URGENCY_RANK[base]:
                return Triage(stated, rule.urgency, rule.code)
            break
    return Triage(stated, base, None)


# --- routing rules -----------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """When a routing rule applies. Each part left empty matches every referral; a referral
    must match every part that is given.

    - `any_category`: the referral reports at least one of these harms;
    - `urgencies`: its urgency is one of these;
    - `channels`: it came in through one of these channels;
    - `age_bands`: the child's age band is one of these;
    - `child_identified`: the child is (True) or is not (False) identified.
    """

    any_category: frozenset[Category] = frozenset()
    urgencies: frozenset[Urgency] = frozenset()
    channels: frozenset[Channel] = frozenset()
    age_bands: frozenset[AgeBand] = frozenset()
    child_identified: bool | None = None

    def holds_for(self, referral: ReferralFacts) -> bool:
        if self.any_category and self.any_category.isdisjoint(referral.categories):
            return False
        if self.urgencies and referral.urgency not in self.urgencies:
            return False
        if self.channels and referral.channel not in self.channels:
            return False
        if self.age_bands and referral.age_band not in self.age_bands:
            return False
        return self.child_identified is None or self.child_identified == referral.child_identified

    @property
    def is_catch_all(self) -> bool:
        return self == Condition()


@dataclass(frozen=True)
class RoutingRule:
    """One line of the routing table: when `condition` holds, send the referral to
    `agencies` (none: hold it for the intake officer to route). The rule's `code` is
    recorded with the decision (and travels in the `referral.routed` event), so anyone can
    later see why an agency was asked to act."""

    code: str
    condition: Condition
    agencies: tuple[Agency, ...]
    description: str = ""


@dataclass(frozen=True)
class RoutingDecision:
    """Which agencies must act on a referral, and the rule that decided it."""

    agencies: tuple[Agency, ...]
    rule: str


class NoRoutingRule(Exception):
    """No rule of the table applies to a referral: the table lacks a catch-all last line."""


DEFAULT_ROUTING_RULES: tuple[RoutingRule, ...] = (
    RoutingRule(
        code="sexual_exploitation",
        condition=Condition(any_category=frozenset(SEXUAL_EXPLOITATION_CATEGORIES)),
        agencies=(Agency.social_services, Agency.justice),
        description=(
            "Any form of sexual exploitation or abuse is a crime as well as a protection "
            "concern: social services protect the child, police and justice investigate."
        ),
    ),
    RoutingRule(
        code="child_protection",
        condition=Condition(),
        agencies=(Agency.social_services,),
        description="Every referral goes to social services, who protect and support the child.",
    ),
)
"""The smallest sensible routing table. Rules are read in order and the first whose
condition holds decides; the last rule applies to every referral. The service routes by
the table in `routing_rules.yaml` (or `ROUTING_RULES_PATH`), read by `parse_routing_rules`."""

MANUAL_RULE = "intake_officer_decision"
"""The rule code of a routing an intake officer decided by hand (re-routing)."""


def route(
    referral: ReferralFacts, rules: Iterable[RoutingRule] = DEFAULT_ROUTING_RULES
) -> RoutingDecision:
    """Decide which agencies must act on `referral`: the first rule whose condition holds."""
    for rule in rules:
        if rule.condition.holds_for(referral):
            return RoutingDecision(agencies=in_agency_order(rule.agencies), rule=rule.code)
    raise NoRoutingRule("no routing rule applies; the table needs a catch-all last rule")


def in_agency_order(agencies: Iterable[Agency]) -> tuple[Agency, ...]:
    chosen = set(agencies)
    return tuple(agency for agency in Agency if agency in chosen)


class InvalidRoutingRules(Exception):
    """A routing table that cannot be used; `problems` says each thing wrong, by place."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


_CONDITION_KEYS: Mapping[str, type] = {
    "any_category": Category,
    "urgencies": Urgency,
    "channels": Channel,
    "age_bands": AgeBand,
}


def _codes_of(kind: type, values: Any, where: str, problems: list[str]) -> frozenset:
    if not isinstance(values, list) or not values:
        problems.append(f"{where}: a non-empty list of codes")
        return frozenset()
    found = set()
    for value in values:
        try:
            found.add(kind(value))
        except ValueError:
            problems.append(f"{where}: unknown code {value!r}")
    return frozenset(found)


def parse_routing_rules(data: Any) -> tuple[RoutingRule, ...]:
    """The routing table from its data (the YAML file, parsed), checked whole: every
    problem is named with its place, so a deployment fixes its file in one go.

    The shape: `{"version": 1, "rules": [{"code", "description"?, "when"?: {"any_category"?,
    "urgencies"?, "channels"?, "age_bands"?, "child_identified"?}, "route_to": [agency...]}]}`.
    The last rule must have no condition (every referral is decided by some rule)."""
    problems: list[str] = []
    if not isinstance(data, Mapping):
        raise InvalidRoutingRules(["the file: a mapping with `version` and `rules`"])
    if data.get("version") != 1:
        problems.append("version: must be 1")
    unknown = set(data) - {"version", "rules"}
    if unknown:
        problems.append(f"unknown keys {sorted(unknown)}")
    entries = data.get("rules")
    if not isinstance(entries, list) or not entries:
        raise InvalidRoutingRules([*problems, "rules: a non-empty list"])
    rules: list[RoutingRule] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"rules[{index}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: a mapping")
            continue
        unknown = set(entry) - {"code", "description", "when", "route_to"}
        if unknown:
            problems.append(f"{where}: unknown keys {sorted(unknown)}")
        code = entry.get("code")
        if not isinstance(code, str) or not CODE_PATTERN.match(code):
            problems.append(f"{where}.code: a snake_case code")
            code = f"rule_{index}"
        elif code in seen or code == MANUAL_RULE:
            problems.append(f"{where}.code: {code!r} is used twice or reserved")
        seen.add(code)
        description = entry.get("description", "")
        if not isinstance(description, str):
            problems.append(f"{where}.description: text")
            description = ""
        when = entry.get("when") or {}
        parts: dict[str, Any] = {}
        if not isinstance(when, Mapping):
            problems.append(f"{where}.when: a mapping")
            when = {}
        for key, value in when.items():
            if key in _CONDITION_KEYS:
                parts[key] = _codes_of(_CONDITION_KEYS[key], value, f"{where}.when.{key}", problems)
            elif key == "child_identified":
                if not isinstance(value, bool):
                    problems.append(f"{where}.when.child_identified: true or false")
                else:
                    parts[key] = value
            else:
                problems.append(f"{where}.when: unknown condition {key!r}")
        route_to = entry.get("route_to")
        agencies: frozenset[Agency] = frozenset()
        if route_to == []:
            agencies = frozenset()  # hold for the intake officer
        elif route_to is None:
            problems.append(f"{where}.route_to: a list of agencies ([] holds it for intake)")
        else:
            agencies = _codes_of(Agency, route_to, f"{where}.route_to", problems)
        rules.append(RoutingRule(code, Condition(**parts), in_agency_order(agencies), description))
    if rules and not rules[-1].condition.is_catch_all:
        problems.append(f"rules[{len(rules) - 1}]: the last rule must have no `when`")
    for index, rule in enumerate(rules[:-1]):
        if rule.condition.is_catch_all:
            problems.append(f"rules[{index}]: only the last rule may have no `when`")
    if problems:
        raise InvalidRoutingRules(problems)
    return tuple(rules)


# --- consent -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Consent:
    """Consent to share the referral, or the legal basis to share it without consent, and
    who recorded that decision."""

    status: ConsentStatus
    by: str
    legal_basis: LegalBasis | None
    decided_by: str
    decided_at: dt.datetime

    @property
    def allows_routing(self) -> bool:
        return self.status == ConsentStatus.given or self.legal_basis is not None


# --- who may do what -------------------------------------------------------------------

AGENCY_STAFF: Mapping[Agency, frozenset[Role]] = {
    Agency.social_services: frozenset({Role.social_worker, Role.supervisor}),
    Agency.justice: frozenset({Role.police_liaison_officer}),
    Agency.cross_border: frozenset({Role.central_authority_officer}),
}
"""The roles that act for each agency on the referrals routed to it."""

SUBMITTER_ROLES = frozenset({Role.intake_officer, Role.administrator})
"""Who may register a referral at the hub."""

INTAKE_ROLES = frozenset({Role.intake_officer})
"""Who decides at the hub (re-route, revoke, close, link) and sees identities."""

PIPELINE_OVERSIGHT_ROLES = frozenset({Role.coordinator, Role.intake_officer, Role.administrator})
"""Who may see any referral's pipeline row (codes and times only, never identities)."""

NO_LONGER_ROUTED = frozenset({AgencyStatus.declined, AgencyStatus.revoked})
"""An agency that declined the referral, or from which the hub withdrew it, no longer
has a claim on its details."""


def staff_agency(role: Role, organisation: Organisation) -> Agency | None:
    """The agency a person acts for: their organisation is an agency referrals are routed
    to, and their role is one of that agency's staff roles. None for everyone else (the
    hub's intake officers, coordinators, administrators)."""
    try:
        agency = Agency(organisation.value)
    except ValueError:
        return None
    return agency if role in AGENCY_STAFF[agency] else None


@dataclass(frozen=True)
class Permission:
    """An answer to "may this person do this?", with the reason written to the audit trail."""

    allowed: bool
    reason: str


def may_pull_details(role: Role, organisation: Organisation, pipeline: Pipeline) -> Permission:
    """An agency sees a referral's details (the child, the reporter, the summary) only when
    the referral was routed to it and it has not declined it or had it withdrawn, and only
    through its own staff."""
    agency = staff_agency(role, organisation)
    if agency is None:
        return Permission(False, f"role {role} of {organisation} does not act for an agency")
    state = pipeline.agencies.get(agency)
    if state is None or not state.routed:
        return Permission(False, f"not routed to {agency}")
    if state.status in NO_LONGER_ROUTED:
        return Permission(False, f"routing to {agency} is {state.status}")
    return Permission(True, f"routed to {agency}")


def may_see_pipeline_row(role: Role, organisation: Organisation, pipeline: Pipeline) -> bool:
    """Coordinators, intake officers and administrators see every pipeline row; the staff of
    an agency see the rows of the referrals routed to their agency."""
    if role in PIPELINE_OVERSIGHT_ROLES:
        return True
    agency = staff_agency(role, organisation)
    state = pipeline.agencies.get(agency) if agency is not None else None
    return state is not None and state.routed


# --- SLA clocks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SlaPolicy:
    """How long an agency has to accept a referral routed to it, by urgency, with
    optional overrides per agency."""

    acceptance: Mapping[Urgency, dt.timedelta]
    by_agency: Mapping[Agency, Mapping[Urgency, dt.timedelta]] = field(default_factory=dict)

    def due(self, agency: Agency, urgency: Urgency, routed_at: dt.datetime) -> dt.datetime:
        limits = self.by_agency.get(agency, {})
        return routed_at + limits.get(urgency, self.acceptance[urgency])

    @classmethod
    def from_settings(
        cls, acceptance: Mapping[str, Any], by_agency: Mapping[str, Any] | None = None
    ) -> SlaPolicy:
        """From the configuration (seconds per urgency code; per agency code, optional).
        Raises ValueError naming the setting that is wrong."""

        def seconds(value: Any, where: str) -> dt.timedelta:
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{where}: a number of seconds") from None
            if number <= 0:
                raise ValueError(f"{where}: a positive number of seconds")
            return dt.timedelta(seconds=number)

        def per_urgency(values: Any, where: str, complete: bool) -> dict[Urgency, dt.timedelta]:
            if not isinstance(values, Mapping):
                raise ValueError(f"{where}: a mapping of urgency to seconds")
            result = {}
            for key, value in values.items():
                try:
                    urgency = Urgency(key)
                except ValueError:
                    raise ValueError(f"{where}: unknown urgency {key!r}") from None
                result[urgency] = seconds(value, f"{where}.{key}")
            missing = [u.value for u in Urgency if u not in result]
            if complete and missing:
                raise ValueError(f"{where}: missing {', '.join(missing)}")
            return result

        overrides = {}
        for key, values in (by_agency or {}).items():
            try:
                agency = Agency(key)
            except ValueError:
                raise ValueError(
                    f"SLA_ACCEPTANCE_SECONDS_BY_AGENCY: unknown agency {key!r}"
                ) from None
            overrides[agency] = per_urgency(
                values, f"SLA_ACCEPTANCE_SECONDS_BY_AGENCY.{key}", complete=False
            )
        return cls(per_urgency(acceptance, "SLA_ACCEPTANCE_SECONDS", complete=True), overrides)


DEFAULT_SLA = SlaPolicy(
    {
        Urgency.immediate_danger: dt.timedelta(hours=2),
        Urgency.high: dt.timedelta(hours=24),
        Urgency.normal: dt.timedelta(hours=72),
    }
)


# --- the pipeline ----------------------------------------------------------------------

WORKING_ON_IT = frozenset(
    {
        AgencyStatus.accepted,
        AgencyStatus.case_opened,
        AgencyStatus.investigation_opened,
        AgencyStatus.request_filed,
    }
)
"""Statuses of an agency that has taken the referral on and is working on it."""

HOLDING = WORKING_ON_IT | {AgencyStatus.pending_acceptance}
"""Statuses of an agency that holds the referral: asked to act, or acting."""


def derive_stage(statuses: Iterable[AgencyStatus]) -> Stage:
    """The overall stage, from every agency's status:

    - `closed` once every agency still involved has closed its record (an agency that
      declined, or from which the referral was withdrawn, is no longer involved; a request
      abroad still running keeps the matter open);
    - `in_care` once any agency has taken it on (a case, an investigation, a request);
    - `routed` while the agencies have not answered yet;
    - `triaged` when no agency holds it (every one declined or was withdrawn, or none was
      asked yet): it is back with the hub's intake officer to route or close.
    """
    involved = [status for status in statuses if status not in NO_LONGER_ROUTED]
    if not involved:
        return Stage.triaged
    if all(status == AgencyStatus.closed for status in involved):
        return Stage.closed
    if any(status in WORKING_ON_IT or status == AgencyStatus.closed for status in involved):
        return Stage.in_care
    return Stage.routed


def is_newer(sequence: int, last_applied: int) -> bool:
    """Events may arrive late, twice or out of order: a status is applied only when its
    event is newer (a higher sequence from the same producer) than the last one applied.
    `last_applied` is 0 when nothing from that producer was applied yet."""
    return sequence > last_applied


class RefusedTransition(Exception):
    """The referral is not in a state that allows this (answered 409 with `code`). The
    reason after the code names codes only, never a referral or a person: it may be logged."""

    def __init__(self, code: ConflictCode, reason: str):
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


@dataclass
class AgencyState:
    """One agency's position on one referral.

    `routed` says the hub sent the referral to this agency; an agency that joined on its
    own (the central authority filing a request abroad) has a status but no routing, and
    so no claim on the referral's details. `detail` is the agency's own status code (the
    case's workflow status, the investigation's...), kept for the timeline. `due_at` is
    when acceptance is due while the agency has not answered (the SLA clock), or a request
    abroad's legal deadline; `breached_at` when that clock ran out."""

    agency: Agency
    status: AgencyStatus
    since: dt.datetime
    routed: bool
    rule: str | None = None
    detail: str | None = None
    accepted_at: dt.datetime | None = None
    last_sequence: int = 0
    due_at: dt.datetime | None = None
    breached_at: dt.datetime | None = None
    decline_reason: DeclineReason | None = None
    suggested_agency: Agency | None = None
    revoke_reason: RevokeReason | None = None

    @property
    def overdue(self) -> bool:
        return self.breached_at is not None and self.status in (
            AgencyStatus.pending_acceptance,
            AgencyStatus.request_filed,
        )


@dataclass(frozen=True)
class PartnerReport:
    """What an agency's event tells the hub: the agency's new status, its own status code,
    when, whether the agency has just opened its record (taken the referral on), and a
    request abroad's legal deadline."""

    agency: Agency
    status: AgencyStatus
    detail: str
    at: dt.datetime
    opens_record: bool
    due_at: dt.datetime | None = None


@dataclass(frozen=True)
class Applied:
    """What a partner report changed: the agency's status (`False` for a stale event) and
    whether it is the agency's acceptance of the referral, to be announced."""

    status_changed: bool
    accepted: bool


@dataclass(frozen=True)
class Hop:
    """One step of a referral's timeline: codes and a time, never a name."""

    at: dt.datetime
    kind: HopKind
    agency: Agency | None = None
    status: str | None = None
    detail: str | None = None


@dataclass
class Pipeline:
    """The coordinated status of one referral: codes and times, never an identity.

    The methods that change it record what happened in `hops` (new steps of the timeline,
    for the repository to keep) and keep the stage, its timestamps and the flags right."""

    coordination_id: uuid.UUID
    stage: Stage
    urgency: Urgency
    channel: Channel
    categories: tuple[Category, ...]
    received_at: dt.datetime
    agencies: dict[Agency, AgencyState] = field(default_factory=dict)
    flags: list[Flag] = field(default_factory=list)
    age_band: AgeBand = AgeBand.unknown
    stage_since: dt.datetime | None = None
    triaged_at: dt.datetime | None = None
    routed_at: dt.datetime | None = None
    in_care_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    close_reason: CloseReason | None = None
    linked_to: uuid.UUID | None = None
    updated_at: dt.datetime | None = None
    hops: list[Hop] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        coordination_id: uuid.UUID,
        referral: ReferralFacts,
        decision: RoutingDecision,
        received_at: dt.datetime,
        sla: SlaPolicy | None = None,
        triage_rule: str | None = None,
    ) -> Pipeline:
        """A new referral, triaged and routed: every agency it was routed to is pending
        acceptance (with its SLA clock when a policy is given); none: it waits for the
        intake officer (`awaiting_routing`)."""
        row = cls(
            coordination_id=coordination_id,
            stage=Stage.triaged,
            urgency=referral.urgency,
            channel=referral.channel,
            categories=referral.categories,
            received_at=received_at,
            age_band=referral.age_band,
            stage_since=received_at,
            triaged_at=received_at,
            updated_at=received_at,
        )
        row.hops.append(Hop(received_at, HopKind.received, status=Stage.received.value))
        row.hops.append(
            Hop(received_at, HopKind.triaged, status=referral.urgency.value, detail=triage_rule)
        )
        if decision.agencies:
            row.route(decision.agencies, decision.rule, received_at, sla)
        else:
            row._settle(received_at)
        return row

    @property
    def routed_to(self) -> tuple[Agency, ...]:
        return tuple(agency for agency, state in self.agencies.items() if state.routed)

    @property
    def holders(self) -> tuple[Agency, ...]:
        """The agencies that hold the referral now: asked to act, or acting."""
        return tuple(a for a, s in self.agencies.items() if s.status in HOLDING)

    @property
    def working(self) -> tuple[Agency, ...]:
        return tuple(a for a, s in self.agencies.items() if s.status in WORKING_ON_IT)

    @property
    def due_at(self) -> dt.datetime | None:
        """The earliest acceptance still awaited: when the next clock runs out."""
        pending = [
            s.due_at
            for s in self.agencies.values()
            if s.status == AgencyStatus.pending_acceptance and s.due_at is not None
        ]
        return min(pending) if pending else None

    @property
    def overdue(self) -> bool:
        return Flag.awaiting_acceptance_overdue in self.flags

    @property
    def is_closed(self) -> bool:
        return self.stage == Stage.closed

    # --- the hub's decisions --------------------------------------------------------

    def route(
        self,
        agencies: Iterable[Agency],
        rule: str,
        at: dt.datetime,
        sla: SlaPolicy | None = None,
    ) -> tuple[Agency, ...]:
        """Ask `agencies` to act (again): each is pending acceptance from `at`, its clock
        running. An agency that holds the referral already cannot be asked twice; one that
        declined or was withdrawn can."""
        chosen = in_agency_order(agencies)
        if not chosen:
            raise RefusedTransition(ConflictCode.wrong_state, "route to at least one agency")
        if self.close_reason is not None or self.is_closed:
            raise RefusedTransition(ConflictCode.wrong_state, "the referral is closed")
        holding = [a for a in chosen if a in self.agencies and self.agencies[a].status in HOLDING]
        if holding:
            raise RefusedTransition(
                ConflictCode.already_with_agency, f"already with {', '.join(map(str, holding))}"
            )
        for agency in chosen:
            previous = self.agencies.get(agency)
            self.agencies[agency] = AgencyState(
                agency=agency,
                status=AgencyStatus.pending_acceptance,
                since=at,
                routed=True,
                rule=rule,
                last_sequence=previous.last_sequence if previous else 0,
                due_at=sla.due(agency, self.urgency, at) if sla else None,
            )
            self.hops.append(
                Hop(at, HopKind.routed, agency, AgencyStatus.pending_acceptance.value, rule)
            )
        self.agencies = {a: self.agencies[a] for a in Agency if a in self.agencies}
        if self.routed_at is None:
            self.routed_at = at
        self._settle(at)
        return chosen

    def decline(
        self,
        agency: Agency,
        reason: DeclineReason,
        better_agency: Agency | None,
        at: dt.datetime,
    ) -> None:
        """The agency declines a referral waiting for it, with a reason (and perhaps the
        agency it should go to). With nobody left holding it, it goes back to the intake
        officer (`declined_by_all`)."""
        state = self._pending(agency, "decline")
        state.status = AgencyStatus.declined
        state.since = at
        state.due_at = None
        state.decline_reason = reason
        state.suggested_agency = better_agency
        self.hops.append(
            Hop(at, HopKind.declined, agency, AgencyStatus.declined.value, reason.value)
        )
        self._settle(at)

    def revoke(self, agency: Agency, reason: RevokeReason | None, at: dt.datetime) -> None:
        """The hub withdraws a routing the agency has not answered yet (shown as revoked)."""
        state = self._pending(agency, "revoke")
        self._revoke(state, reason, at)
        self._settle(at)

    def _revoke(self, state: AgencyState, reason: RevokeReason | None, at: dt.datetime) -> None:
        state.status = AgencyStatus.revoked
        state.since = at
        state.due_at = None
        state.revoke_reason = reason
        self.hops.append(
            Hop(
                at,
                HopKind.revoked,
                state.agency,
                AgencyStatus.revoked.value,
                reason.value if reason else None,
            )
        )

    def close(self, reason: CloseReason, at: dt.datetime) -> tuple[Agency, ...]:
        """The hub closes a referral no agency is working on; routings still waiting for an
        answer are revoked (returned). Agencies working on it close their own records."""
        if self.close_reason is not None or self.is_closed:
            raise RefusedTransition(ConflictCode.wrong_state, "the referral is closed already")
        if self.working:
            raise RefusedTransition(
                ConflictCode.agency_working,
                f"{', '.join(map(str, self.working))} working on it: they close their records",
            )
        revoked = []
        for state in self.agencies.values():
            if state.status == AgencyStatus.pending_acceptance:
                self._revoke(state, RevokeReason.no_longer_needed, at)
                revoked.append(state.agency)
        self.closed_at = at
        self.close_reason = reason
        self.hops.append(Hop(at, HopKind.closed, None, Stage.closed.value, reason.value))
        self._settle(at)
        return tuple(revoked)

    def link_to(self, primary: uuid.UUID, at: dt.datetime) -> tuple[Agency, ...]:
        """This referral is the same child's matter as `primary`: it is closed as its
        duplicate and its waiting routings are revoked (returned)."""
        if primary == self.coordination_id:
            raise RefusedTransition(
                ConflictCode.wrong_state, "a referral is not a duplicate of itself"
            )
        revoked = self.close(CloseReason.duplicate, at)
        self.linked_to = primary
        self.hops.append(Hop(at, HopKind.linked, None, None, None))
        self.updated_at = at
        return revoked

    def _pending(self, agency: Agency, what: str) -> AgencyState:
        state = self.agencies.get(agency)
        if state is None or not state.routed:
            raise RefusedTransition(
                ConflictCode.wrong_state, f"not routed to {agency}: nothing to {what}"
            )
        if state.status != AgencyStatus.pending_acceptance:
            raise RefusedTransition(
                ConflictCode.wrong_state, f"{agency} is {state.status}: only a waiting routing"
            )
        return state

    # --- clocks ---------------------------------------------------------------------

    def run_clocks(self, now: dt.datetime) -> list[AgencyState]:
        """Mark every clock that has run out by `now`: an acceptance still awaited past its
        deadline (returned: each is escalated), a request abroad past its legal deadline.
        A clock is marked once."""
        escalated = []
        changed = False
        for state in self.agencies.values():
            if state.breached_at is not None or state.due_at is None or state.due_at > now:
                continue
            if state.status == AgencyStatus.pending_acceptance:
                state.breached_at = now
                escalated.append(state)
                changed = True
                self.hops.append(
                    Hop(
                        now,
                        HopKind.escalated,
                        state.agency,
                        state.status.value,
                        "acceptance_overdue",
                    )
                )
            elif state.status == AgencyStatus.request_filed:
                state.breached_at = now
                changed = True
        if changed:
            self._settle(now, stage_change=False)
        return escalated

    # --- the agencies' reports ------------------------------------------------------

    def apply(self, report: PartnerReport, sequence: int) -> Applied:
        """Take in an agency's report carried by an event numbered `sequence`.

        The acceptance is recorded the first time the agency reports opening its record,
        even when that event arrives after a newer one: that the agency took the referral
        on is a fact whatever the order. The status itself moves only for a newer event.
        """
        state = self.agencies.get(report.agency)
        if state is None:
            state = AgencyState(
                agency=report.agency, status=report.status, since=report.at, routed=False
            )
            self.agencies[report.agency] = state
            self.agencies = {a: self.agencies[a] for a in Agency if a in self.agencies}
        accepted = report.opens_record and state.routed and state.accepted_at is None
        if accepted:
            state.accepted_at = report.at
            self.hops.append(
                Hop(report.at, HopKind.accepted, report.agency, AgencyStatus.accepted.value)
            )
        fresh = is_newer(sequence, state.last_sequence)
        if fresh:
            changed = state.status != report.status or state.detail != report.detail
            state.status = report.status
            state.since = report.at
            state.detail = report.detail
            state.last_sequence = sequence
            if report.status == AgencyStatus.request_filed:
                # A request abroad's legal deadline: a new deadline is a new clock.
                if report.due_at != state.due_at:
                    state.breached_at = None
                state.due_at = report.due_at
            elif report.status != AgencyStatus.pending_acceptance:
                state.due_at = None  # answered: the acceptance clock stops
            if changed:
                self.hops.append(
                    Hop(
                        report.at,
                        HopKind.partner_status,
                        report.agency,
                        report.status.value,
                        report.detail,
                    )
                )
        if fresh or accepted:
            self._settle(report.at)
        return Applied(status_changed=fresh, accepted=accepted)

    # --- keeping the row consistent ---------------------------------------------------

    def set_possible_duplicate(self, flagged: bool, at: dt.datetime) -> None:
        has = Flag.possible_duplicate in self.flags
        if flagged != has:
            self.flags = derive_flags(self, possible_duplicate=flagged)
            self.updated_at = at

    def _settle(self, at: dt.datetime, stage_change: bool = True) -> None:
        if stage_change:
            stage = (
                Stage.closed
                if self.close_reason is not None  # the hub closed it
                else derive_stage(s.status for s in self.agencies.values())
            )
            if stage != self.stage:
                self.stage = stage
                self.stage_since = at
            if stage == Stage.in_care and self.in_care_at is None:
                self.in_care_at = at
            if stage == Stage.closed and self.closed_at is None:
                self.closed_at = at  # every agency closed its record
            elif stage != Stage.closed:
                self.closed_at = None  # an agency reopened its record
        self.flags = derive_flags(self, possible_duplicate=Flag.possible_duplicate in self.flags)
        self.updated_at = at


def derive_flags(row: Pipeline, *, possible_duplicate: bool) -> list[Flag]:
    """The flags a pipeline row shows, from its state (in the order of `Flag`).

    - `awaiting_acceptance_overdue`: an agency's acceptance clock ran out and it has not
      answered yet;
    - `declined_by_all`: routed, declined, and nobody holds it: back with the hub;
    - `request_abroad_overdue`: a request abroad is past its legal deadline;
    - `possible_duplicate`: another referral, from another channel and close in time,
      seems to be about the same child (kept by the duplicate check);
    - `awaiting_routing`: open and no agency holds it: the intake officer routes or closes.
    """
    flags = set()
    open_ = row.stage != Stage.closed
    states = list(row.agencies.values())
    if open_ and any(
        s.status == AgencyStatus.pending_acceptance and s.breached_at is not None for s in states
    ):
        flags.add(Flag.awaiting_acceptance_overdue)
    holders = [s for s in states if s.status in HOLDING]
    if open_ and not holders and any(s.status == AgencyStatus.declined for s in states):
        flags.add(Flag.declined_by_all)
    if open_ and any(
        s.status == AgencyStatus.request_filed and s.breached_at is not None for s in states
    ):
        flags.add(Flag.request_abroad_overdue)
    if possible_duplicate and open_:
        flags.add(Flag.possible_duplicate)
    if open_ and not holders:
        flags.add(Flag.awaiting_routing)
    return [flag for flag in Flag if flag in flags]


FLAG_BITS: Mapping[Flag, int] = {flag: 1 << index for index, flag in enumerate(Flag)}
"""One bit per flag (the `Flag` enumeration is append-only), for indexed filtering."""


def facets(row: Pipeline) -> set[str]:
    """What a pipeline row can be filtered by beyond its own columns: its categories, the
    agencies involved and their statuses (`pipeline_facets`)."""
    found = {f"category:{category.value}" for category in row.categories}
    for agency, state in row.agencies.items():
        found |= {
            f"agency:{agency.value}",
            f"agency:{agency.value}:{state.status.value}",
            f"status:{state.status.value}",
        }
    return found


def facet_filter(filters: PipelineFilters) -> list[set[str]]:
    """The facet groups a query asks for: a row must hold at least one facet of each."""
    groups = []
    if filters.categories:
        groups.append({f"category:{c.value}" for c in filters.categories})
    if filters.agencies and filters.agency_statuses:
        groups.append(
            {
                f"agency:{a.value}:{s.value}"
                for a in filters.agencies
                for s in filters.agency_statuses
            }
        )
    elif filters.agencies:
        groups.append({f"agency:{a.value}" for a in filters.agencies})
    elif filters.agency_statuses:
        groups.append({f"status:{s.value}" for s in filters.agency_statuses})
    return groups


EVERY_ROW = "all"
"""The count key every pipeline row holds: the unfiltered pipeline's counts per stage."""


def count_keys(row: Pipeline) -> set[str]:
    """The counts per stage a pipeline row is counted in (`pipeline_counts`): every row, its
    urgency, its channel, each flag, each facet. A filter on one of these is answered from
    the kept counts instead of counting the rows."""
    return stored_count_keys(
        row.urgency.value, row.channel.value, [f.value for f in row.flags], facets(row)
    )


def stored_count_keys(
    urgency: str, channel: str, flags: Iterable[str], held_facets: Iterable[str]
) -> set[str]:
    """`count_keys` of a row as stored: its codes and the facets it holds."""
    return {
        EVERY_ROW,
        f"urgency:{urgency}",
        f"channel:{channel}",
        *(f"flag:{flag}" for flag in flags),
        *held_facets,
    }


def counted_keys(filters: PipelineFilters) -> list[str] | None:
    """The count keys whose per-stage sums are exactly the counts of the rows these filters
    match, or None when only counting the rows can tell (a time range, two filters
    combined, or several values of something a row can hold more than one of: summing
    those would count a row twice). A stage filter is applied to the sums themselves."""
    if filters.received_from is not None or filters.received_to is not None:
        return None
    asked: list[list[str]] = []
    # A row has one urgency and one channel: several values of one of them add up exactly.
    if filters.urgencies:
        asked.append(sorted(f"urgency:{u.value}" for u in filters.urgencies))
    if filters.channels:
        asked.append(sorted(f"channel:{c.value}" for c in filters.channels))
    if filters.flags:
        asked.append(sorted(f"flag:{f.value}" for f in filters.flags))
    asked.extend(sorted(group) for group in facet_filter(filters))
    if not asked:
        return [EVERY_ROW]
    if len(asked) > 1:
        return None
    [keys] = asked
    single_valued = keys[0].startswith(("urgency:", "channel:"))
    return keys if single_valued or len(keys) == 1 else None


def count_changes(
    before: tuple[Stage, set[str]] | None, after: tuple[Stage, set[str]] | None
) -> dict[tuple[Stage, str], int]:
    """How the kept counts move when a row goes from `before` to `after` (stage and count
    keys; None for a row that did not exist or no longer does)."""
    changes: dict[tuple[Stage, str], int] = {}
    if before is not None:
        for key in before[1]:
            changes[(before[0], key)] = changes.get((before[0], key), 0) - 1
    if after is not None:
        for key in after[1]:
            changes[(after[0], key)] = changes.get((after[0], key), 0) + 1
    return {slot: n for slot, n in changes.items() if n}


def reached(row: Pipeline) -> set[Stage]:
    """The funnel's stages past `received` a row has reached (the first time of each is
    set): kept apart from its stage, since one closed at triage never reached `routed`."""
    return stored_reached(row.triaged_at, row.routed_at, row.in_care_at, row.closed_at)


def stored_reached(
    triaged_at: dt.datetime | None,
    routed_at: dt.datetime | None,
    in_care_at: dt.datetime | None,
    closed_at: dt.datetime | None,
) -> set[Stage]:
    """`reached` of a row as stored: the stages whose time is set."""
    times = {
        Stage.triaged: triaged_at,
        Stage.routed: routed_at,
        Stage.in_care: in_care_at,
        Stage.closed: closed_at,
    }
    return {stage for stage, at in times.items() if at is not None}


def funnel_changes(
    before: tuple[Stage, set[Stage], set[str]] | None,
    after: tuple[Stage, set[Stage], set[str]] | None,
) -> dict[tuple[Stage, Stage, str], int]:
    """How the kept funnel moves when a row goes from `before` to `after` (stage, stages
    reached, count keys; None for a row that did not exist or no longer does): one count
    per (stage, stage reached, key), so that the filters the counts per stage answer
    (`counted_keys`, a stage filter included) answer the funnel too."""
    changes: dict[tuple[Stage, Stage, str], int] = {}
    for sign, side in ((-1, before), (1, after)):
        if side is None:
            continue
        stage, steps, keys = side
        for step in steps:
            for key in keys:
                slot = (stage, step, key)
                changes[slot] = changes.get(slot, 0) + sign
    return {slot: n for slot, n in changes.items() if n}


def mask(codes: Iterable[Any], bits: Mapping[Any, int]) -> int:
    total = 0
    for code in codes:
        total |= bits[code]
    return total


# --- the timeline ------------------------------------------------------------------------

TERMINAL_HOPS = frozenset({HopKind.declined, HopKind.revoked, HopKind.closed, HopKind.linked})


def timeline(hops: Iterable[Hop], now: dt.datetime) -> list[dict[str, Any]]:
    """Every hop, in the order the hub recorded it (an agency's clock may differ from the
    hub's: the order of learning is the causal one), with the time spent at it: until the
    next hop of the same track (an agency's, or the referral's own), or, for the last hop
    of a track that is still open, until `now` (`ongoing`). Never negative."""
    result: list[dict[str, Any]] = []
    last_of_track: dict[Agency | None, int] = {}
    for hop in hops:
        track = hop.agency
        if track in last_of_track:
            previous = result[last_of_track[track]]
            previous["time_spent_seconds"] = max(0, int((hop.at - previous["at"]).total_seconds()))
            previous["ongoing"] = False
        ended = hop.kind in TERMINAL_HOPS or (
            hop.kind == HopKind.partner_status and hop.status == AgencyStatus.closed.value
        )
        result.append(
            {
                "at": hop.at,
                "kind": hop.kind,
                "agency": hop.agency,
                "status": hop.status,
                "detail": hop.detail,
                "time_spent_seconds": 0 if ended else max(0, int((now - hop.at).total_seconds())),
                "ongoing": not ended,
            }
        )
        last_of_track[track] = len(result) - 1
    return result


# --- the coordinators' pipeline query -------------------------------------------------------

AGEING_LIMITS: tuple[tuple[AgeingBucket, dt.timedelta | None], ...] = (
    (AgeingBucket.under_2_hours, dt.timedelta(hours=2)),
    (AgeingBucket.hours_2_to_24, dt.timedelta(hours=24)),
    (AgeingBucket.days_1_to_3, dt.timedelta(days=3)),
    (AgeingBucket.days_3_to_7, dt.timedelta(days=7)),
    (AgeingBucket.days_7_to_30, dt.timedelta(days=30)),
    (AgeingBucket.over_30_days, None),
)
"""The ageing chart's buckets: the upper bound of each (the last has none)."""

OPEN_STAGES = (Stage.received, Stage.triaged, Stage.routed, Stage.in_care)

FUNNEL = (Stage.received, Stage.triaged, Stage.routed, Stage.in_care, Stage.closed)


def ageing_bucket(waited: dt.timedelta) -> AgeingBucket:
    for bucket, limit in AGEING_LIMITS:
        if limit is None or waited < limit:
            return bucket
    raise AssertionError("unreachable: the last bucket has no limit")


SORTS = ("priority", "oldest", "newest")


@dataclass(frozen=True)
class PipelineFilters:
    stages: frozenset[Stage] = frozenset()
    agencies: frozenset[Agency] = frozenset()
    agency_statuses: frozenset[AgencyStatus] = frozenset()
    urgencies: frozenset[Urgency] = frozenset()
    categories: frozenset[Category] = frozenset()
    channels: frozenset[Channel] = frozenset()
    flags: frozenset[Flag] = frozenset()
    received_from: dt.datetime | None = None
    received_to: dt.datetime | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, Any]) -> PipelineFilters:
        """From `PipelineFiltersSchema`'s loaded form."""
        return cls(
            stages=frozenset(query.get("stage") or ()),
            agencies=frozenset(query.get("agency") or ()),
            agency_statuses=frozenset(query.get("agency_status") or ()),
            urgencies=frozenset(query.get("urgency") or ()),
            categories=frozenset(query.get("category") or ()),
            channels=frozenset(query.get("channel") or ()),
            flags=frozenset(query.get("flag") or ()),
            received_from=query.get("received_from"),
            received_to=query.get("received_to"),
        )


@dataclass(frozen=True)
class Cursor:
    """Where a page of the pipeline ended: the sort key of its last row. Opaque to callers
    (URL-safe base64 of JSON), checked when it comes back."""

    sort: str
    urgency_rank: int
    received_at: dt.datetime
    coordination_id: str

    def encode(self) -> str:
        return _pack_cursor(self.sort, self.urgency_rank, self.received_at, self.coordination_id)

    @classmethod
    def decode(cls, text: str, sort: str) -> Cursor:
        """The cursor, or ValueError when it is not one of ours or is for another sort."""
        given_sort, rank, instant, cid = _unpack_cursor(text)
        if given_sort != sort:
            raise ValueError("Not a cursor of this query.")
        return cls(sort, rank, instant, cid)


@dataclass(frozen=True)
class IntakeCursor:
    """Where a page of an agency's intake queue ended: the place of its last referral in
    the queue's order (waiting for the agency's answer first, then most urgent, newest,
    and by coordination id). Opaque to callers, checked when it comes back."""

    waiting: bool
    urgency_rank: int
    received_at: dt.datetime
    coordination_id: str

    @classmethod
    def of(cls, item: Mapping[str, Any]) -> IntakeCursor:
        """The place of an intake queue item (status, urgency, received_at, coordination_id)."""
        return cls(
            item["status"] == AgencyStatus.pending_acceptance,
            URGENCY_RANK[item["urgency"]],
            item["received_at"],
            str(item["coordination_id"]),
        )

    def encode(self) -> str:
        group = "waiting" if self.waiting else "answered"
        return _pack_cursor(group, self.urgency_rank, self.received_at, self.coordination_id)

    @classmethod
    def decode(cls, text: str) -> IntakeCursor:
        """The cursor, or ValueError when it is not one of the intake queue's."""
        group, rank, instant, cid = _unpack_cursor(text)
        if group not in ("waiting", "answered"):
            raise ValueError("Not a cursor of this query.")
        return cls(group == "waiting", rank, instant, cid)


def _pack_cursor(tag: str, rank: int, received_at: dt.datetime, cid: str) -> str:
    """A page's end as callers carry it: URL-safe base64 of JSON."""
    data = [tag, rank, received_at.isoformat(), cid]
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _unpack_cursor(text: str) -> tuple[str, int, dt.datetime, str]:
    """What `_pack_cursor` packed, or ValueError for anything else: a cursor comes back
    from outside, so each part is checked before it reaches a query."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        tag, rank, received, cid = json.loads(raw)
        instant = dt.datetime.fromisoformat(received)
        cid = str(uuid.UUID(cid if isinstance(cid, str) else ""))  # as the rows spell it
    except (binascii.Error, ValueError, TypeError, RecursionError):
        raise ValueError("Not a cursor of this query.") from None
    if (
        not isinstance(tag, str)
        or type(rank) is not int
        or rank not in URGENCY_RANK.values()
        or instant.tzinfo is None
    ):
        raise ValueError("Not a cursor of this query.")
    return tag, rank, instant, cid


def pipeline_version(last_change: dt.datetime | None, recent_changes: int = 0) -> str:
    """An opaque token that changes whenever a pipeline row changes: the last change's
    time, and how many rows changed shortly before it (a change that committed after a
    later-stamped one moves the count, not the time)."""
    if last_change is None:
        return "0"
    instant = last_change if last_change.tzinfo else last_change.replace(tzinfo=dt.UTC)
    micros = round(instant.timestamp() * 1_000_000)
    return f"{micros:x}.{recent_changes:x}"


# --- possible duplicates -----------------------------------------------------------------

DUPLICATE_WINDOW = dt.timedelta(days=30)
"""How close in time two referrals must be to be compared (`DUPLICATE_WINDOW_DAYS`)."""

_NOT_LETTERS = re.compile(r"[^a-z]")


def normalise_name(name: str | None) -> str:
    """A name compared the forgiving way: no accents, no case, letters only."""
    if not name:
        return ""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NOT_LETTERS.sub("", plain.casefold())


def identity_keys(child: Mapping[str, Any] | None, on: dt.date) -> list[str]:
    """What two referrals about the same child share, as strings to blind-index (never
    stored as such): the given name with the date of birth; the full name with the date of
    birth and with each birth year the child's age allows. A first name alone, or with an
    age only, gives nothing: it would match too many children."""
    if not child:
        return []
    given = normalise_name(child.get("given_name"))
    family = normalise_name(child.get("family_name"))
    if not given:
        return []
    born = child.get("date_of_birth")
    if born is not None:
        born = born if isinstance(born, dt.date) else dt.date.fromisoformat(str(born))
    keys = [] if born is None else [f"child:{given}|dob:{born.isoformat()}"]
    if not family:
        return keys
    name = f"{given}|{family}"
    if born is not None:
        keys.append(f"child:{name}|dob:{born.isoformat()}")
        years = {born.year}
    elif child.get("age_years") is not None:
        age = int(child["age_years"])
        years = {on.year - age, on.year - age - 1}
    else:
        years = set()
    keys += [f"child:{name}|born:{year}" for year in sorted(years)]
    return keys


def is_possible_duplicate(
    channel: Channel,
    received_at: dt.datetime,
    other_channel: Channel,
    other_received_at: dt.datetime,
    window: dt.timedelta = DUPLICATE_WINDOW,
) -> bool:
    """Same child (the caller matched their keys), close in time, from another channel."""
    return other_channel != channel and abs(received_at - other_received_at) <= window


# --- what the agencies' events mean for the pipeline -------------------------------------


def _case_status(status: CaseStatus) -> AgencyStatus:
    """A case stays `case_opened` through assessment, plan and services until it is closed."""
    return AgencyStatus.closed if status == CaseStatus.closed else AgencyStatus.case_opened


def _investigation_status(status: InvestigationStatus) -> AgencyStatus:
    """An investigation stays `investigation_opened` until it is closed (a decision of no
    further action or a charge is its own detail, not the end of the record)."""
    if status == InvestigationStatus.closed:
        return AgencyStatus.closed
    return AgencyStatus.investigation_opened


REQUEST_ENDED = frozenset({RequestStatus.executed, RequestStatus.refused, RequestStatus.withdrawn})
"""A request abroad that was executed, refused or withdrawn needs nothing more."""


def _request_status(status: RequestStatus) -> AgencyStatus:
    return AgencyStatus.closed if status in REQUEST_ENDED else AgencyStatus.request_filed


@dataclass(frozen=True)
class PartnerEvent:
    """How one kind of agency event reads: whose status it is, which payload field says
    when, whether it opens the agency's record, and how the agency's own status code maps
    onto the pipeline's."""

    agency: Agency
    time_field: str
    opens_record: bool
    status_of: Callable[[Any], AgencyStatus]  # the partner's own status -> the pipeline's


PARTNER_EVENTS: Mapping[str, PartnerEvent] = {
    "case.opened": PartnerEvent(Agency.social_services, "opened_at", True, _case_status),
    "case.status_changed": PartnerEvent(Agency.social_services, "changed_at", False, _case_status),
    "investigation.opened": PartnerEvent(Agency.justice, "opened_at", True, _investigation_status),
    "investigation.status_changed": PartnerEvent(
        Agency.justice, "changed_at", False, _investigation_status
    ),
    # Filing a request abroad is not an acceptance of a routing: the central authority
    # joins the matter through the police, not through the hub.
    "request.filed": PartnerEvent(Agency.cross_border, "filed_at", False, _request_status),
    "request.status_changed": PartnerEvent(
        Agency.cross_border, "changed_at", False, _request_status
    ),
}
"""The agencies' events the pipeline follows, and how each maps onto an agency status."""


def read_partner_report(event_type: str, payload: Mapping[str, Any]) -> PartnerReport:
    """What an agency's event (its type and deserialised payload) means for the pipeline."""
    spec = PARTNER_EVENTS[event_type]
    partner_status = payload["status"]
    return PartnerReport(
        agency=spec.agency,
        status=spec.status_of(partner_status),
        detail=str(partner_status),
        at=payload[spec.time_field],
        opens_record=spec.opens_record,
        due_at=payload.get("due_at"),
    )
