"""The referral hub's work, in plain Python (no nameko, no SQL).

A referral reaches the hub from a helpline, a hotline, a school, a platform report...
The hub records it, decides which agencies must act on it (routing), and then keeps one
*pipeline row* per referral: where the child's matter stands overall (the stage) and,
for each agency, its own status and since when. The agencies report their statuses as
events; the hub never sees their records, and they see the referral's details only when
it was routed to them.

The words used here:

- *coordination id*: the random identifier the hub gives a referral; the only key the
  agencies share. It carries no meaning.
- *routing*: the decision that an agency must act on a referral, made by a rule.
- *agency status*: one agency's position on one referral (pending acceptance, case
  opened, closed...).
- *stage*: the overall position of the referral (routed, in care, closed).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from concord_contracts.codes import (
    SEXUAL_EXPLOITATION_CATEGORIES,
    Agency,
    AgencyStatus,
    CaseStatus,
    Category,
    Channel,
    Flag,
    InvestigationStatus,
    Organisation,
    RequestStatus,
    Role,
    Stage,
    Urgency,
)

# --- the referral as the hub routes it ---------------------------------------------------


@dataclass(frozen=True)
class ReferralFacts:
    """What routing looks at: how the referral came in, what harm it reports, how urgent.

    Never the child's or the reporter's identity: routing is decided on codes alone."""

    channel: Channel
    categories: tuple[Category, ...]
    urgency: Urgency


URGENCY_RANK: Mapping[Urgency, int] = {
    Urgency.immediate_danger: 0,
    Urgency.high: 1,
    Urgency.normal: 2,
}
"""Most urgent first: a child in immediate danger before everything else."""

EVENT_PRIORITY: Mapping[Urgency, int] = {
    Urgency.immediate_danger: 9,
    Urgency.high: 5,
    Urgency.normal: 0,
}
"""The message priority of a referral's events: urgent referrals travel a priority lane
and are never queued behind a bulk import of platform reports."""


# --- routing rules ---------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """When a routing rule applies. Each part left empty matches every referral; a referral
    must match every part that is given.

    - `any_category`: the referral reports at least one of these harms;
    - `urgencies`: its urgency is one of these;
    - `channels`: it came in through one of these channels.
    """

    any_category: frozenset[Category] = frozenset()
    urgencies: frozenset[Urgency] = frozenset()
    channels: frozenset[Channel] = frozenset()

    def holds_for(self, referral: ReferralFacts) -> bool:
        if self.any_category and self.any_category.isdisjoint(referral.categories):
            return False
        if self.urgencies and referral.urgency not in self.urgencies:
            return False
        return not (self.channels and referral.channel not in self.channels)


@dataclass(frozen=True)
class RoutingRule:
    """One line of the routing table: when `condition` holds, send the referral to
    `agencies`. The rule's `code` is recorded with the decision (and travels in the
    `referral.routed` event), so anyone can later see why an agency was asked to act."""

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
"""The default routing table. Rules are read in order and the first whose condition holds
decides; the last rule applies to every referral, so every referral is routed somewhere."""


def route(
    referral: ReferralFacts, rules: Iterable[RoutingRule] = DEFAULT_ROUTING_RULES
) -> RoutingDecision:
    """Decide which agencies must act on `referral`: the first rule whose condition holds."""
    for rule in rules:
        if rule.condition.holds_for(referral):
            return RoutingDecision(agencies=_in_agency_order(rule.agencies), rule=rule.code)
    raise NoRoutingRule("no routing rule applies; the table needs a catch-all last rule")


def _in_agency_order(agencies: Iterable[Agency]) -> tuple[Agency, ...]:
    chosen = set(agencies)
    return tuple(agency for agency in Agency if agency in chosen)


# --- who may do what -------------------------------------------------------------------

AGENCY_STAFF: Mapping[Agency, frozenset[Role]] = {
    Agency.social_services: frozenset({Role.social_worker, Role.supervisor}),
    Agency.justice: frozenset({Role.police_liaison_officer}),
    Agency.cross_border: frozenset({Role.central_authority_officer}),
}
"""The roles that act for each agency on the referrals routed to it."""

SUBMITTER_ROLES = frozenset({Role.intake_officer, Role.administrator})
"""Who may register a referral at the hub."""

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


def derive_stage(statuses: Iterable[AgencyStatus]) -> Stage:
    """The overall stage, from every agency's status:

    - `closed` once every agency still involved has closed its record (an agency that
      declined, or from which the referral was withdrawn, is no longer involved; a request
      abroad still running keeps the matter open);
    - `in_care` once any agency has taken it on (a case, an investigation, a request);
    - `routed` while the agencies have not answered yet.
    """
    involved = [status for status in statuses if status not in NO_LONGER_ROUTED]
    if involved and all(status == AgencyStatus.closed for status in involved):
        return Stage.closed
    if any(status in WORKING_ON_IT or status == AgencyStatus.closed for status in involved):
        return Stage.in_care
    return Stage.routed


def is_newer(sequence: int, last_applied: int) -> bool:
    """Events may arrive late, twice or out of order: a status is applied only when its
    event is newer (a higher sequence from the same producer) than the last one applied.
    `last_applied` is 0 when nothing from that producer was applied yet."""
    return sequence > last_applied


@dataclass
class AgencyState:
    """One agency's position on one referral.

    `routed` says the hub sent the referral to this agency; an agency that joined on its
    own (the central authority filing a request abroad) has a status but no routing, and
    so no claim on the referral's details. `detail` is the agency's own status code (the
    case's workflow status, the investigation's...), kept for the timeline."""

    agency: Agency
    status: AgencyStatus
    since: dt.datetime
    routed: bool
    rule: str | None = None
    detail: str | None = None
    accepted_at: dt.datetime | None = None
    last_sequence: int = 0


@dataclass(frozen=True)
class PartnerReport:
    """What an agency's event tells the hub: the agency's new status, its own status code,
    when, and whether the agency has just opened its record (taken the referral on)."""

    agency: Agency
    status: AgencyStatus
    detail: str
    at: dt.datetime
    opens_record: bool


@dataclass(frozen=True)
class Applied:
    """What a partner report changed: the agency's status (`False` for a stale event) and
    whether it is the agency's acceptance of the referral, to be announced."""

    status_changed: bool
    accepted: bool


@dataclass
class Pipeline:
    """The coordinated status of one referral: codes and times, never an identity."""

    coordination_id: uuid.UUID
    stage: Stage
    urgency: Urgency
    channel: Channel
    categories: tuple[Category, ...]
    received_at: dt.datetime
    agencies: dict[Agency, AgencyState] = field(default_factory=dict)
    flags: list[Flag] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        coordination_id: uuid.UUID,
        referral: ReferralFacts,
        decision: RoutingDecision,
        received_at: dt.datetime,
    ) -> Pipeline:
        """A new referral: every agency it was routed to is pending acceptance."""
        agencies = {
            agency: AgencyState(
                agency=agency,
                status=AgencyStatus.pending_acceptance,
                since=received_at,
                routed=True,
                rule=decision.rule,
            )
            for agency in decision.agencies
        }
        return cls(
            coordination_id=coordination_id,
            stage=derive_stage(state.status for state in agencies.values()),
            urgency=referral.urgency,
            channel=referral.channel,
            categories=referral.categories,
            received_at=received_at,
            agencies=agencies,
        )

    @property
    def routed_to(self) -> tuple[Agency, ...]:
        return tuple(agency for agency, state in self.agencies.items() if state.routed)

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
        accepted = report.opens_record and state.routed and state.accepted_at is None
        if accepted:
            state.accepted_at = report.at
        fresh = is_newer(sequence, state.last_sequence)
        if fresh:
            state.status = report.status
            state.since = report.at
            state.detail = report.detail
            state.last_sequence = sequence
            self.stage = derive_stage(s.status for s in self.agencies.values())
        return Applied(status_changed=fresh, accepted=accepted)


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
    )
