"""The referral hub as a nameko service: thin entrypoints over `referral.domain`.

RPC (from the gateway and the agencies' services, with the caller's identity): intake
(`submit_referral`, `submit_batch`), the agencies' side (`intake_queue`, `pull_details`,
`decline`), the hub's decisions (`reroute`, `revoke`, `close`, `link_duplicate`,
`dismiss_duplicate`), what coordinators and intake officers read (`pipeline_row`,
`pipeline`, `pipeline_summary`, `pipeline_version`, `referral_detail`).
docs/interfaces/referral.md lists them with their arguments and who may call each.
Events consumed: the agencies' status events, projected onto the pipeline.
Events published (through the outbox): `referral.received`, `.triaged`, `.routed`,
`.accepted`, `.declined`, `.revoked`, `.escalated`, `.closed`, `.linked`, `.flags_changed`.
A timer runs the SLA clocks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import eventlet
import sqlalchemy as sa
from marshmallow import ValidationError
from nameko.rpc import rpc

from concord_contracts.cases import ConflictCode
from concord_contracts.codes import Agency, AgencyStatus, ConsentStatus, HopKind
from concord_contracts.envelope import Envelope
from concord_contracts.rpc import (
    BatchResultSchema,
    CloseSchema,
    DeclineSchema,
    DismissDuplicateSchema,
    IntakePageSchema,
    IntakeQuerySchema,
    LinkSchema,
    PipelineFiltersSchema,
    PipelinePageSchema,
    PipelineQuerySchema,
    PipelineRowSchema,
    PipelineSummarySchema,
    PipelineVersionSchema,
    ReferralDetailSchema,
    ReferralDetailsSchema,
    ReferralSubmissionSchema,
    RerouteSchema,
    RevokeSchema,
    SubmissionReceiptSchema,
)
from concord_kit import crypto, outbox
from concord_kit.db import UnitOfWork
from concord_kit.errors import BadInput, Conflict, Forbidden, NotFound
from concord_kit.events import on_event
from concord_kit.identity import Caller
from concord_kit.service import ConcordService
from concord_kit.timer import every
from referral import direct, domain
from referral.repository import NewReferral, ReferralRepository
from referral.settings import HubSettings

PULL_DETAILS = "referral.details_pulled"
SUBMITTED = "referral.submitted"
DETAIL_READ = "referral.detail_read"
MAX_BATCH = 500
SUBMISSION = ReferralSubmissionSchema()
"""One instance for every report: building a schema per report was a fifth of a bulk
intake's time (marshmallow schemas hold no state between loads)."""
HELD_RULE = "held_without_consent"
"""The rule code of a referral held because it carries no consent record (a child's own
report): the intake officer routes it, recording the legal basis."""


def parse_coordination_id(value: Any, field: str = "coordination_id") -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        raise BadInput({field: ["Not a valid UUID."]}) from None


def _load(schema, data: Any, field: str | None = None) -> Any:
    """`data` as `schema` loads it, or BadInput naming each field (under `field`)."""
    try:
        return schema.load(data)
    except ValidationError as exc:
        errors = exc.normalized_messages()
        raise BadInput({field: errors} if field else errors) from None


def _cursor(text: str | None, decode: Callable[[str], Any]) -> Any:
    """Where a page starts, from the `cursor` the previous page gave (None: the first
    page); a cursor that does not decode is BadInput naming it, never a failure."""
    if not text:
        return None
    try:
        return decode(text)
    except ValueError as exc:
        raise BadInput({"cursor": [str(exc)]}) from None


def _agency_dump(state: domain.AgencyState) -> dict[str, Any]:
    return {
        "status": state.status,
        "since": state.since,
        "due_at": state.due_at if state.status == AgencyStatus.pending_acceptance else None,
        "overdue": state.overdue,
        "routed": state.routed,
        "rule": state.rule,
        "detail": state.detail,
        "decline_reason": state.decline_reason,
        "suggested_agency": state.suggested_agency,
        "revoke_reason": state.revoke_reason,
    }


def row_values(row: domain.Pipeline, timeline: list[dict] | None = None) -> dict[str, Any]:
    values = {
        "coordination_id": row.coordination_id,
        "stage": row.stage,
        "urgency": row.urgency,
        "channel": row.channel,
        "categories": list(row.categories),
        "received_at": row.received_at,
        "agencies": {agency: _agency_dump(state) for agency, state in row.agencies.items()},
        "flags": list(row.flags),
        "stage_since": row.stage_since,
        "due_at": row.due_at,
        "overdue": row.overdue,
        "updated_at": row.updated_at,
        "close_reason": row.close_reason,
        "closed_at": row.closed_at,
        "linked_to": row.linked_to,
    }
    if timeline is not None:
        values["timeline"] = timeline
    return values


def pipeline_row_dump(row: domain.Pipeline, timeline: list[dict] | None = None) -> dict[str, Any]:
    return PipelineRowSchema().dump(row_values(row, timeline))


@dataclass
class Outcome:
    """What happened to one report of an intake (a receipt, or why it was refused)."""

    index: int
    key: str | None
    status: str  # created, replayed, rejected
    coordination_id: uuid.UUID | None = None
    received_at: dt.datetime | None = None
    urgency: Any = None
    routed_to: Sequence[Agency] = ()
    routing_rule: str | None = None
    triage_rule: str | None = None
    possible_duplicates: Sequence[uuid.UUID] = ()
    errors: dict | None = None


@dataclass
class Candidate:
    index: int
    data: dict[str, Any]
    key: str | None
    digest: str | None


class ReferralService(ConcordService):
    name = "referral"

    hub = HubSettings()

    # --- intake ---------------------------------------------------------------------

    @rpc
    def submit_referral(self, submission: dict) -> dict:
        """Register a referral, triage and route it, and announce it: one transaction.
        The same idempotency key again returns the first receipt (`replayed`)."""
        caller = self.identity.require(domain.SUBMITTER_ROLES)
        with SingleSubmissions.taking_one():
            [outcome] = self._take_in(caller, [submission], bulk=False)
        if outcome.status == "rejected":
            raise BadInput(outcome.errors or {})
        return SubmissionReceiptSchema().dump(
            {
                "coordination_id": outcome.coordination_id,
                "received_at": outcome.received_at,
                "urgency": outcome.urgency,
                "routed_to": list(outcome.routed_to),
                "routing_rule": outcome.routing_rule,
                "triage_rule": outcome.triage_rule,
                "replayed": outcome.status == "replayed",
                "possible_duplicates": list(outcome.possible_duplicates),
            }
        )

    @rpc
    def submit_batch(self, reports: list) -> dict:
        """Register many reports (a platform's bulk intake), each accepted or refused on its
        own with its reasons; each must carry an idempotency key, so that sending the same
        reports again creates nothing twice. One transaction for the whole call."""
        caller = self.identity.require(domain.SUBMITTER_ROLES)
        if not isinstance(reports, list) or not reports:
            raise BadInput({"reports": ["A non-empty list of referrals."]})
        if len(reports) > MAX_BATCH:
            raise BadInput({"reports": [f"At most {MAX_BATCH} referrals per call."]})
        outcomes = self._take_in(caller, reports, bulk=True)
        results = []
        for outcome in outcomes:
            result: dict[str, Any] = {
                "index": outcome.index,
                "idempotency_key": outcome.key,
                "status": outcome.status,
            }
            if outcome.status == "rejected":
                result["errors"] = outcome.errors
            else:
                result.update(
                    coordination_id=outcome.coordination_id,
                    urgency=outcome.urgency,
                    routed_to=list(outcome.routed_to),
                )
            results.append(result)
        return BatchResultSchema().dump(
            {
                "results": results,
                **{
                    status: sum(1 for o in outcomes if o.status == status)
                    for status in ("created", "replayed", "rejected")
                },
            }
        )

    @rpc
    def register_direct(self, registration: dict) -> dict:
        """A case social services registered themselves (no referral came in): a
        coordination id and a pipeline row from codes alone, routed to social services only
        (`referral.direct`; docs/interfaces/referral.md, "Requests")."""
        return direct.register(self, self.identity.require(), registration)

    def _take_in(self, caller: Caller, reports: Sequence[Any], bulk: bool) -> list[Outcome]:
        """Each report checked, then the valid ones registered in one transaction. A bulk
        intake requires an idempotency key on each report and steps aside for single
        submissions between reports."""
        outcomes: dict[int, Outcome] = {}
        candidates: list[Candidate] = []
        pace = BulkPace() if bulk else None
        for index, raw in enumerate(reports):
            if pace is not None:
                pace.between_reports()
            data, errors = self._check(raw, key_required=bulk)
            if errors is not None:
                key = raw.get("idempotency_key") if isinstance(raw, dict) else None
                outcomes[index] = Outcome(
                    index, key if isinstance(key, str) else None, "rejected", errors=errors
                )
                continue
            assert data is not None
            key = data.get("idempotency_key")
            candidates.append(Candidate(index, data, key, _digest(data) if key else None))
        if candidates:
            try:
                outcomes.update(self._register(caller, candidates, pace))
            except sa.exc.IntegrityError:
                # The same idempotency key committed by another call meanwhile: once more,
                # now that key is known and the report is answered as a replay.
                outcomes.update(self._register(caller, candidates, pace))
        return [outcomes[i] for i in range(len(reports))]

    @staticmethod
    def _check(raw: Any, key_required: bool) -> tuple[dict | None, dict | None]:
        if not isinstance(raw, dict):
            return None, {"_schema": ["A referral is a JSON object."]}
        try:
            data = SUBMISSION.load(raw)
        except ValidationError as exc:
            return None, exc.normalized_messages()
        if key_required and not data.get("idempotency_key"):
            return None, {"idempotency_key": ["Required for each report of a batch."]}
        return domain.complete_for_channel(data), None

    def _register(
        self, caller: Caller, candidates: list[Candidate], pace: BulkPace | None
    ) -> dict[int, Outcome]:
        outcomes: dict[int, Outcome] = {}
        now = self.hub.now()
        with self.db.unit_of_work() as uow:
            repository = ReferralRepository(uow.session)
            known = repository.known_keys(c.key for c in candidates if c.key)
            replayed_ids = [k.coordination_id for k in known.values()]
            first_routing = repository.routed_to(replayed_ids)
            fresh: list[NewReferral] = []
            taken: dict[str, tuple[str | None, Outcome]] = {}  # keys of this call
            for candidate in candidates:
                if pace is not None:
                    pace.between_reports()
                key = candidate.key
                if key is not None and key in known:
                    before = known[key]
                    outcomes[candidate.index] = self._replay(
                        candidate, before.digest, before.coordination_id, before.received_at,
                        before.urgency, first_routing.get(before.coordination_id, []),
                        before.routing_rule, before.triage_rule,
                    )  # fmt: skip
                    continue
                if key is not None and key in taken:
                    digest, first = taken[key]
                    outcomes[candidate.index] = self._replay(
                        candidate, digest, first.coordination_id, first.received_at,
                        first.urgency, first.routed_to, first.routing_rule, first.triage_rule,
                    )  # fmt: skip
                    continue
                item = self._new_referral(caller, candidate.data, candidate.digest, now)
                fresh.append(item)
                outcome = Outcome(
                    candidate.index,
                    key,
                    "created",
                    item.coordination_id,
                    item.received_at,
                    item.row.urgency,
                    item.row.routed_to,
                    item.decision.rule,
                    item.triage.rule,
                )
                outcomes[candidate.index] = outcome
                if key is not None:
                    taken[key] = (candidate.digest, outcome)
            if fresh:
                duplicates = self._find_duplicates(uow, repository, fresh, now)
                for outcome in outcomes.values():
                    if outcome.status == "created" and outcome.coordination_id is not None:
                        outcome.possible_duplicates = duplicates.get(outcome.coordination_id, ())
                repository.add_referrals(fresh)
                uow.publish_many(self._intake_events(fresh))
                uow.audit_many(
                    [
                        (SUBMITTED, i.coordination_id, f"routed by rule {i.decision.rule}")
                        for i in fresh
                    ]
                )
        if len(fresh) > 1:  # a bulk intake: one line, not one per report
            self.log.info(
                "referrals_submitted",
                created=len(fresh),
                urgent=sum(1 for i in fresh if i.row.urgency == domain.Urgency.immediate_danger),
                held=sum(1 for i in fresh if not i.row.routed_to),
            )
        for item in fresh if len(fresh) == 1 else ():
            self.log.info(
                "referral_submitted",
                coordination_id=str(item.coordination_id),
                urgency=str(item.row.urgency),
                routed_to=[str(a) for a in item.row.routed_to],
                rule=item.decision.rule,
                triage_rule=item.triage.rule,
            )
        return outcomes

    @staticmethod
    def _replay(candidate, digest, cid, received_at, urgency, routed_to, rule, triage_rule):
        if digest is not None and candidate.digest != digest:
            return Outcome(
                candidate.index,
                candidate.key,
                "rejected",
                errors={"idempotency_key": ["Already used for another report."]},
            )
        return Outcome(
            candidate.index,
            candidate.key,
            "replayed",
            cid,
            received_at,
            urgency,
            routed_to,
            rule,
            triage_rule,
        )

    def _new_referral(
        self, caller: Caller, data: dict[str, Any], digest: str | None, now: dt.datetime
    ) -> NewReferral:
        child = data.get("child")
        triage = domain.triage(
            data.get("urgency"),
            data["categories"],
            data.get("risk_indicators") or (),
            data.get("annotations") or (),
        )
        facts = domain.ReferralFacts(
            channel=data["channel"],
            categories=tuple(data["categories"]),
            urgency=triage.urgency,
            age_band=domain.age_band(child, now.date()),
            child_identified=domain.child_identified(child),
        )
        given = data.get("consent")
        consent = (
            None
            if given is None
            else domain.Consent(
                status=given["status"],
                by=str(given["by"]),
                legal_basis=given.get("legal_basis"),
                decided_by=caller.user_id,
                decided_at=now,
            )
        )
        if consent is None or not consent.allows_routing:
            decision = domain.RoutingDecision((), HELD_RULE)
        else:
            decision = domain.route(facts, self.hub.rules)
        cid = uuid.uuid4()
        row = domain.Pipeline.open(cid, facts, decision, now, self.hub.sla, triage.rule)
        keys = [crypto.blind_index(k) for k in domain.identity_keys(child, now.date())]
        return NewReferral(
            coordination_id=cid,
            received_at=now,
            submission=data,
            triage=triage,
            decision=decision,
            row=row,
            submitted_by=caller.user_id,
            submitter_role=str(caller.role),
            consent=consent,
            identity_keys=keys,
            submission_digest=digest,
        )

    def _find_duplicates(
        self,
        uow: UnitOfWork,
        repository: ReferralRepository,
        fresh: list[NewReferral],
        now: dt.datetime,
    ) -> dict[uuid.UUID, tuple[uuid.UUID, ...]]:
        """Flag the new referrals that may be about the same child as another (registered
        before or in this call): same blind-indexed identity, another channel, close in
        time. Earlier referrals found get the flag too (announced)."""
        by_key: dict[str, list[tuple[uuid.UUID, Any, dt.datetime]]] = {}
        for cid_key, cid, channel, at in repository.referrals_sharing_keys(
            k for item in fresh for k in item.identity_keys
        ):
            by_key.setdefault(cid_key, []).append((cid, channel, at))
        for item in fresh:
            for k in item.identity_keys:
                by_key.setdefault(k, []).append((item.coordination_id, item.row.channel, now))
        window = self.hub.duplicate_window
        found: dict[uuid.UUID, set[uuid.UUID]] = {}
        pairs = []
        for item in fresh:
            for k in item.identity_keys:
                for other, channel, at in by_key.get(k, []):
                    if other != item.coordination_id and domain.is_possible_duplicate(
                        item.row.channel, item.received_at, channel, at, window
                    ):
                        found.setdefault(item.coordination_id, set()).add(other)
                        pairs.append((item.coordination_id, other))
        if not pairs:
            return {}
        fresh_ids = {item.coordination_id for item in fresh}
        for item in fresh:
            if item.coordination_id in found:
                item.row.set_possible_duplicate(True, now)
                item.row.hops.append(domain.Hop(now, HopKind.duplicate_flagged))
        earlier = sorted({o for others in found.values() for o in others} - fresh_ids, key=str)
        repository.add_possible_duplicates(pairs, now)
        # Earlier rows flagged in a fixed order, so that two intakes never wait on each
        # other's locks in a circle.
        for cid in earlier:
            row = repository.pipeline(cid, lock=True)
            if row is None or row.is_closed:
                continue
            before = list(row.flags)
            row.set_possible_duplicate(True, now)
            row.hops.append(domain.Hop(now, HopKind.duplicate_flagged))
            repository.save_pipeline(row)
            self._announce_flags(uow, row, before, now)
        return {cid: tuple(sorted(others, key=str)) for cid, others in found.items()}

    @staticmethod
    def _intake_events(fresh: Iterable[NewReferral]) -> list[tuple[str, Any, dict, int]]:
        events: list[tuple[str, Any, dict, int]] = []
        for item in fresh:
            row = item.row
            priority = domain.EVENT_PRIORITY[row.urgency]
            codes = {
                "channel": row.channel,
                "categories": list(row.categories),
                "urgency": row.urgency,
            }
            cid = item.coordination_id
            events.append(
                ("referral.received", cid, {**codes, "received_at": item.received_at}, priority)
            )
            events.append(
                (
                    "referral.triaged",
                    cid,
                    {
                        "urgency": row.urgency,
                        "stated_urgency": item.triage.stated,
                        "rule": item.triage.rule,
                        "triaged_at": item.received_at,
                    },
                    priority,
                )
            )
            if item.decision.agencies:
                events.append(
                    (
                        "referral.routed",
                        cid,
                        {
                            **codes,
                            "agencies": list(item.decision.agencies),
                            "rule": item.decision.rule,
                            "routed_at": item.received_at,
                        },
                        priority,
                    )
                )
            if row.flags:
                events.append(
                    (
                        "referral.flags_changed",
                        cid,
                        {"flags": list(row.flags), "changed_at": item.received_at},
                        priority,
                    )
                )
        return events

    # --- the agencies' side -------------------------------------------------------------

    @rpc
    def intake_queue(self, query: dict | None = None) -> dict:
        """One page of the referrals routed to the caller's agency (codes and times only):
        what waits for its answer first, most urgent first, newest first; `cursor` is the
        previous page's `next_cursor`."""
        caller = self.identity.require()
        agency = domain.staff_agency(caller.role, caller.agency)
        if agency is None:
            raise Forbidden("only an agency's staff see the referrals routed to it")
        loaded = _load(IntakeQuerySchema(), query or {})
        after = _cursor(loaded["cursor"], domain.IntakeCursor.decode)
        with self.db.read() as session:
            items, following = ReferralRepository(session).intake_queue(
                agency, loaded["limit"], after
            )
        return IntakePageSchema().dump(
            {"items": items, "next_cursor": following.encode() if following else None}
        )

    @rpc
    def pull_details(self, coordination_id: str) -> dict:
        """The referral as reported, for an agency it was routed to; every pull, allowed or
        refused, is written to the audit trail before the answer leaves."""
        caller = self.identity.require()
        cid = parse_coordination_id(coordination_id)
        details = None
        with self.db.unit_of_work() as uow:
            # The hub's last sequence before the referral: every event up to it is in what
            # the pull checks, so the agency takes them all as older than its acceptance.
            as_of = outbox.last_sequence(uow.session, cid)
            repository = ReferralRepository(uow.session)
            row = repository.pipeline(cid)
            if row is None:
                permission = domain.Permission(False, "no such referral")
                uow.audit(PULL_DETAILS, cid, reason=permission.reason, outcome="not_found")
            else:
                permission = domain.may_pull_details(caller.role, caller.agency, row)
                outcome = "allowed" if permission.allowed else "refused"
                uow.audit(PULL_DETAILS, cid, reason=permission.reason, outcome=outcome)
                if permission.allowed:
                    details = repository.details(cid)
                    agency = domain.staff_agency(caller.role, caller.agency)
                    assert agency is not None  # allowed: its staff, routed to it
                    state = row.agencies[agency]
                    if details is not None:
                        details["hub_status"] = {
                            "agency": agency,
                            "status": state.status,
                            "since": state.since,
                            "sequence": as_of,
                        }
        self.log.info(
            "referral_details_pull",
            coordination_id=str(cid),
            role=str(caller.role),
            agency=str(caller.agency),
            allowed=permission.allowed,
        )
        if row is None:
            raise NotFound(f"no referral {cid}")
        if details is None:
            raise Forbidden(permission.reason)
        return ReferralDetailsSchema().dump(details)

    @rpc
    def decline(self, coordination_id: str, response: dict) -> dict:
        """The caller's agency declines a referral waiting for it, with a reason code and
        perhaps a better agency; with nobody left holding it, it goes back to intake."""
        caller = self.identity.require()
        cid = parse_coordination_id(coordination_id)
        body = _load(DeclineSchema(), response)
        agency = domain.staff_agency(caller.role, caller.agency)
        if agency is None:
            raise Forbidden("only an agency's staff decline for it")
        if body.get("better_agency") == agency:
            raise BadInput({"better_agency": ["Not the declining agency itself."]})

        def change(row: domain.Pipeline, uow: UnitOfWork, now: dt.datetime) -> None:
            state = row.agencies.get(agency)
            if state is None or not state.routed:
                raise Forbidden(f"not routed to {agency}")
            row.decline(agency, body["reason"], body.get("better_agency"), now)
            uow.publish(
                "referral.declined",
                cid,
                {
                    "agency": agency,
                    "reason": body["reason"],
                    "suggested_agency": body.get("better_agency"),
                    "declined_at": now,
                },
                priority=domain.EVENT_PRIORITY[row.urgency],
            )
            uow.audit("referral.declined", cid, reason=f"{agency} declined: {body['reason']}")

        return self._change(cid, change)

    # --- the hub's decisions --------------------------------------------------------------

    @rpc
    def revoke(self, coordination_id: str, revocation: dict) -> dict:
        """Withdraw a routing the agency has not answered yet (shown as revoked)."""
        caller = self.identity.require(domain.INTAKE_ROLES)
        cid = parse_coordination_id(coordination_id)
        body = _load(RevokeSchema(), revocation)

        def change(row: domain.Pipeline, uow: UnitOfWork, now: dt.datetime) -> None:
            row.revoke(body["agency"], body.get("reason"), now)
            self._announce_revoked(uow, row, [body["agency"]], body.get("reason"), now)
            uow.audit("referral.revoked", cid, reason=f"{body['agency']} by {caller.user_id}")

        return self._change(cid, change)

    @rpc
    def reroute(self, coordination_id: str, routing: dict) -> dict:
        """Route the referral (again) to the agencies given: the intake officer's decision,
        recorded with the consent or legal basis it travels under and who decided."""
        caller = self.identity.require(domain.INTAKE_ROLES)
        cid = parse_coordination_id(coordination_id)
        body = _load(RerouteSchema(), routing)

        def change(row: domain.Pipeline, uow: UnitOfWork, now: dt.datetime) -> None:
            repository = ReferralRepository(uow.session)
            consent = repository.consent(cid)
            basis = body.get("legal_basis")
            if basis is not None:
                if consent is not None and consent.status == ConsentStatus.given:
                    raise BadInput({"legal_basis": ["Consent was given: no legal basis."]})
                if consent is None or consent.legal_basis != basis:
                    repository.record_legal_basis(cid, basis, caller.user_id, now)
                    consent = repository.consent(cid)
            if consent is None or not consent.allows_routing:
                raise BadInput({"legal_basis": ["Required: no consent is on record."]})
            basis_by = consent.decided_by if consent.legal_basis is not None else None
            agencies = row.route(body["agencies"], domain.MANUAL_RULE, now, self.hub.sla)
            repository.add_routing_decision(
                cid,
                at=now,
                by=caller.user_id,
                role=str(caller.role),
                agencies=agencies,
                rule=domain.MANUAL_RULE,
                consent=consent,
                legal_basis_by=basis_by,
            )
            uow.publish(
                "referral.routed",
                cid,
                {
                    "agencies": list(agencies),
                    "urgency": row.urgency,
                    "categories": list(row.categories),
                    "channel": row.channel,
                    "rule": domain.MANUAL_RULE,
                    "routed_at": now,
                },
                priority=domain.EVENT_PRIORITY[row.urgency],
            )
            uow.audit("referral.rerouted", cid, reason=f"to {', '.join(map(str, agencies))}")

        return self._change(cid, change)

    @rpc
    def close(self, coordination_id: str, closure: dict) -> dict:
        """Close a referral no agency is working on, with a reason."""
        self.identity.require(domain.INTAKE_ROLES)
        cid = parse_coordination_id(coordination_id)
        body = _load(CloseSchema(), closure)

        def change(row: domain.Pipeline, uow: UnitOfWork, now: dt.datetime) -> None:
            revoked = row.close(body["reason"], now)
            self._announce_revoked(uow, row, revoked, domain.RevokeReason.no_longer_needed, now)
            uow.publish(
                "referral.closed",
                cid,
                {"reason": body["reason"], "closed_at": now},
                priority=domain.EVENT_PRIORITY[row.urgency],
            )
            uow.audit("referral.closed", cid, reason=str(body["reason"]))

        return self._change(cid, change)

    @rpc
    def link_duplicate(self, coordination_id: str, link: dict) -> dict:
        """`coordination_id` is the same child's matter as `duplicate_of`, which is kept:
        this one is closed as its duplicate, its waiting routings revoked."""
        caller = self.identity.require(domain.INTAKE_ROLES)
        cid = parse_coordination_id(coordination_id)
        body = _load(LinkSchema(), link)
        primary = body["duplicate_of"]
        if primary == cid:
            raise BadInput({"duplicate_of": ["Not the referral itself."]})

        def change(row: domain.Pipeline, uow: UnitOfWork, now: dt.datetime) -> None:
            repository = ReferralRepository(uow.session)
            kept = repository.pipeline(primary)
            if kept is None:
                raise BadInput({"duplicate_of": ["No such referral."]})
            if kept.linked_to is not None:
                raise Conflict(
                    ConflictCode.link_to_primary.value,
                    "the one to keep is itself a duplicate: link to the one it is linked to",
                )
            revoked = row.link_to(primary, now)
            repository.mark_linked(cid, primary)
            repository.set_duplicate_status(cid, primary, "linked", caller.user_id, now)
            self._announce_revoked(uow, row, revoked, domain.RevokeReason.no_longer_needed, now)
            priority = domain.EVENT_PRIORITY[row.urgency]
            uow.publish(
                "referral.closed",
                cid,
                {"reason": domain.CloseReason.duplicate, "closed_at": now},
                priority=priority,
            )
            uow.publish(
                "referral.linked", cid, {"linked_to": primary, "linked_at": now}, priority=priority
            )
            uow.audit("referral.linked", cid, reason=f"duplicate of {primary}")
            # The kept one, and every other one paired with this one, may lose the flag.
            for other in sorted({primary, *repository.paired_with(cid)}, key=str):
                self._refresh_duplicate_flag(uow, repository, other, now)

        return self._change(cid, change)

    @rpc
    def dismiss_duplicate(self, coordination_id: str, dismissal: dict) -> dict:
        """The two referrals are not about the same child: the flag goes (from both, unless
        another possible duplicate remains open)."""
        caller = self.identity.require(domain.INTAKE_ROLES)
        cid = parse_coordination_id(coordination_id)
        body = _load(DismissDuplicateSchema(), dismissal)
        other = body["other"]

        def change(row: domain.Pipeline, uow: UnitOfWork, now: dt.datetime) -> None:
            repository = ReferralRepository(uow.session)
            if not repository.set_duplicate_status(cid, other, "dismissed", caller.user_id, now):
                raise BadInput({"other": ["Not flagged as a possible duplicate of this one."]})
            row.hops.append(domain.Hop(now, HopKind.duplicate_dismissed))
            uow.audit("referral.duplicate_dismissed", cid, reason=f"not {other}")
            self._refresh_duplicate_flag(uow, repository, other, now)
            row.set_possible_duplicate(repository.has_open_duplicates(cid), now)

        return self._change(cid, change)

    def _refresh_duplicate_flag(
        self, uow: UnitOfWork, repository: ReferralRepository, cid: uuid.UUID, now: dt.datetime
    ) -> None:
        row = repository.pipeline(cid, lock=True)
        if row is None:
            return
        before = list(row.flags)
        row.set_possible_duplicate(repository.has_open_duplicates(cid), now)
        if row.flags != before:
            repository.save_pipeline(row)
            self._announce_flags(uow, row, before, now)

    def _change(
        self,
        cid: uuid.UUID,
        change: Callable[[domain.Pipeline, UnitOfWork, dt.datetime], None],
    ) -> dict:
        """Apply one decision to a referral, locked, in one transaction with its events;
        a state that does not allow it is a Conflict with the domain's code (the JSON
        `error.code`) and changes nothing."""
        now = self.hub.now()
        with self.db.unit_of_work() as uow:
            repository = ReferralRepository(uow.session)
            row = repository.pipeline(cid, lock=True)
            if row is None:
                raise NotFound(f"no referral {cid}")
            before = list(row.flags)
            try:
                change(row, uow, now)
            except domain.RefusedTransition as exc:
                raise Conflict(exc.code.value, exc.reason) from None
            row.updated_at = now
            repository.save_pipeline(row)
            self._announce_flags(uow, row, before, now)
            timeline = domain.timeline(repository.hops(cid), now)
        self.log.info(
            "referral_changed", coordination_id=str(cid), stage=str(row.stage), flags=row.flags
        )
        return pipeline_row_dump(row, timeline)

    @staticmethod
    def _announce_flags(
        uow: UnitOfWork, row: domain.Pipeline, before: list, now: dt.datetime
    ) -> None:
        if list(row.flags) != list(before):
            uow.publish(
                "referral.flags_changed",
                row.coordination_id,
                {"flags": list(row.flags), "changed_at": now},
                priority=domain.EVENT_PRIORITY[row.urgency],
            )

    @staticmethod
    def _announce_revoked(
        uow: UnitOfWork,
        row: domain.Pipeline,
        agencies: Iterable[Agency],
        reason: Any,
        now: dt.datetime,
    ) -> None:
        for agency in agencies:
            uow.publish(
                "referral.revoked",
                row.coordination_id,
                {"agency": agency, "reason": reason, "revoked_at": now},
                priority=domain.EVENT_PRIORITY[row.urgency],
            )

    # --- what coordinators and intake officers read ---------------------------------------

    @rpc
    def pipeline_row(self, coordination_id: str) -> dict:
        """Where one referral stands: stage, each agency's status since when, the flags,
        and the timeline of every hop with the time spent at each."""
        caller = self.identity.require()
        cid = parse_coordination_id(coordination_id)
        with self.db.read() as session:
            repository = ReferralRepository(session)
            row = repository.pipeline(cid)
            hops = repository.hops(cid) if row is not None else []
        if row is None:
            raise NotFound(f"no referral {cid}")
        if not domain.may_see_pipeline_row(caller.role, caller.agency, row):
            raise Forbidden("this referral's pipeline is not visible to this caller")
        return pipeline_row_dump(row, domain.timeline(hops, self.hub.now()))

    @rpc
    def pipeline(self, query: dict | None = None) -> dict:
        """One page of the coordinators' pipeline, filtered, most urgent first (or oldest,
        or newest); with counts per stage on the first page unless asked otherwise."""
        self.identity.require(domain.PIPELINE_OVERSIGHT_ROLES)
        loaded = _load(PipelineQuerySchema(), query or {})
        sort = loaded["sort"]
        cursor = _cursor(loaded["cursor"], lambda text: domain.Cursor.decode(text, sort))
        with_counts = loaded.get("counts")
        if with_counts is None:
            with_counts = cursor is None
        filters = domain.PipelineFilters.from_query(loaded)
        with self.db.read() as session:
            repository = ReferralRepository(session)
            rows, following = repository.page(filters, sort, loaded["limit"], cursor)
            counts = repository.counts(filters) if with_counts else None
            version = domain.pipeline_version(*repository.version())
        return PipelinePageSchema().dump(
            {
                "items": [row_values(row) for row in rows],
                "next_cursor": following.encode() if following else None,
                "counts": counts,
                "pipeline_version": version,
            }
        )

    @rpc
    def pipeline_summary(self, query: dict | None = None) -> dict:
        """Counts per stage, the funnel and the ageing of what is open, for the charts."""
        self.identity.require(domain.PIPELINE_OVERSIGHT_ROLES)
        loaded = _load(PipelineFiltersSchema(), query or {})
        filters = domain.PipelineFilters.from_query(loaded)
        now = self.hub.now()
        with self.db.read() as session:
            repository = ReferralRepository(session)
            counts = repository.counts(filters)
            funnel = repository.funnel(filters)
            ageing = repository.ageing(filters, now)
            version = domain.pipeline_version(*repository.version())
        return PipelineSummarySchema().dump(
            {
                "counts": counts,
                "funnel": [{"stage": stage, "count": n} for stage, n in funnel.items()],
                "ageing": ageing,
                "pipeline_version": version,
                "as_of": now,
            }
        )

    @rpc
    def pipeline_version(self) -> dict:
        """A token that changes whenever any pipeline row changes: what a board polls."""
        self.identity.require(domain.PIPELINE_OVERSIGHT_ROLES)
        with self.db.read() as session:
            version = domain.pipeline_version(*ReferralRepository(session).version())
        return PipelineVersionSchema().dump({"pipeline_version": version})

    @rpc
    def referral_detail(self, coordination_id: str) -> dict:
        """The referral as the intake officer sees it, identities included, with its
        routing and history; every read, allowed or refused, is audited."""
        caller = self.identity.require()
        cid = parse_coordination_id(coordination_id)
        allowed = caller.role in domain.INTAKE_ROLES
        record = row = None
        with self.db.unit_of_work() as uow:
            repository = ReferralRepository(uow.session)
            if not allowed:
                uow.audit(DETAIL_READ, cid, reason="only intake officers", outcome="refused")
            else:
                record = repository.referral_record(cid)
                if record is None:
                    uow.audit(DETAIL_READ, cid, reason="no such referral", outcome="not_found")
                else:
                    uow.audit(DETAIL_READ, cid, reason="intake officer")
                    row = repository.pipeline(cid)
                    hops = repository.hops(cid)
                    duplicates = repository.duplicates_of(cid)
        if not allowed:
            raise Forbidden("only intake officers see a referral's identities")
        if record is None or row is None:
            raise NotFound(f"no referral {cid}")
        values = row_values(row, domain.timeline(hops, self.hub.now()))
        return ReferralDetailSchema().dump(
            {
                **record,
                "stage": values["stage"],
                "flags": values["flags"],
                "agencies": values["agencies"],
                "timeline": values["timeline"],
                "close_reason": row.close_reason,
                "closed_at": row.closed_at,
                "possible_duplicates": [
                    {
                        "coordination_id": d.coordination_id,
                        "channel": d.channel,
                        "received_at": d.received_at,
                        "status": d.status,
                    }
                    for d in duplicates
                ],
            }
        )

    # --- SLA clocks -------------------------------------------------------------------

    @every("SLA_CHECK_SECONDS", default=30)
    def check_clocks(self) -> None:
        """Mark every clock that ran out: the flag on the row and, for an acceptance still
        awaited, a `referral.escalated` event (urgent referrals on the urgent lane)."""
        now = self.hub.now()
        with self.db.read() as session:
            due = ReferralRepository(session).clocks_due(now)
        for cid in due:
            self._run_clocks(cid, now)

    def _run_clocks(self, cid: uuid.UUID, now: dt.datetime) -> None:
        with self.db.unit_of_work() as uow:
            repository = ReferralRepository(uow.session)
            row = repository.pipeline(cid, lock=True)
            if row is None:
                return
            before = list(row.flags)
            escalated = row.run_clocks(now)
            repository.save_pipeline(row)
            for state in escalated:
                assert state.due_at is not None
                uow.publish(
                    "referral.escalated",
                    cid,
                    {
                        "agency": state.agency,
                        "reason": "acceptance_overdue",
                        "urgency": row.urgency,
                        "due_at": state.due_at,
                        "escalated_at": now,
                    },
                    priority=domain.EVENT_PRIORITY[row.urgency],
                )
            self._announce_flags(uow, row, before, now)
        for state in escalated:
            self.log.warning(
                "acceptance_overdue",
                coordination_id=str(cid),
                agency=str(state.agency),
                urgency=str(row.urgency),
            )

    # --- the agencies' statuses -----------------------------------------------------------

    @on_event("case.opened")
    def on_case_opened(self, event: Envelope) -> None:
        self._project(event)

    @on_event("case.status_changed")
    def on_case_status_changed(self, event: Envelope) -> None:
        self._project(event)

    @on_event("investigation.opened")
    def on_investigation_opened(self, event: Envelope) -> None:
        self._project(event)

    @on_event("investigation.status_changed")
    def on_investigation_status_changed(self, event: Envelope) -> None:
        self._project(event)

    @on_event("request.filed")
    def on_request_filed(self, event: Envelope) -> None:
        self._project(event)

    @on_event("request.status_changed")
    def on_request_status_changed(self, event: Envelope) -> None:
        self._project(event)

    def _project(self, event: Envelope) -> None:
        """Apply an agency's status event to the pipeline, once, and only if it is newer."""
        report = domain.read_partner_report(event.event_type, event.payload)
        with self.db.unit_of_work() as uow:
            if not uow.first_delivery(event):
                return
            repository = ReferralRepository(uow.session)
            row = repository.pipeline(event.coordination_id, lock=True)
            if row is None:
                # The referral may still be committing, or the event came first: raising
                # rolls the inbox record back and sends the event to be retried (then parked).
                raise NotFound(f"no referral {event.coordination_id} (yet)")
            before = list(row.flags)
            applied = row.apply(report, event.sequence)
            if applied.status_changed or applied.accepted:
                row.updated_at = self.hub.now()  # when the hub learned it (the version)
                repository.save_pipeline(row)
            if applied.accepted:
                uow.publish(
                    "referral.accepted",
                    row.coordination_id,
                    {"agency": report.agency, "accepted_at": report.at},
                    priority=domain.EVENT_PRIORITY[row.urgency],
                )
            self._announce_flags(uow, row, before, report.at)
        self.log.info(
            "partner_status_projected",
            event_type=event.event_type,
            sequence=event.sequence,
            agency=str(report.agency),
            applied=applied.status_changed,
            accepted=applied.accepted,
            stage=str(row.stage),
        )


class SingleSubmissions:
    """How many single submissions this process is taking in right now: a bulk intake
    steps aside for them (`BulkPace`). (`threading` is eventlet's under nameko.)"""

    in_progress = 0
    none_in_progress = threading.Event()
    none_in_progress.set()

    @classmethod
    @contextlib.contextmanager
    def taking_one(cls) -> Iterator[None]:
        cls.in_progress += 1
        cls.none_in_progress.clear()
        try:
            yield
        finally:
            cls.in_progress -= 1
            if not cls.in_progress:
                cls.none_in_progress.set()


class BulkPace:
    """A bulk intake is CPU work with no I/O for report after report, and eventlet never
    preempts: a single (urgent) submission arriving meanwhile would get the process's CPU
    only at the chunk's I/O waits. Between reports a bulk call lets every other green
    thread run, and while a single submission is being taken in it waits for it, up to
    `budget` seconds in all per call (the caller's RPC timeout is 10 s by default)."""

    def __init__(self, budget: float = 1.0):
        self.left = budget

    def between_reports(self) -> None:
        eventlet.sleep(0)
        if SingleSubmissions.in_progress and self.left > 0:
            started = time.monotonic()
            SingleSubmissions.none_in_progress.wait(self.left)
            self.left -= time.monotonic() - started


def _digest(data: dict[str, Any]) -> str:
    """A keyed digest of a submission without its idempotency key: what a replay compares."""
    body = {k: v for k, v in data.items() if k != "idempotency_key"}
    text = json.dumps(SUBMISSION.dump(body), sort_keys=True, default=str)
    return crypto.blind_index(f"submission|{text}")
