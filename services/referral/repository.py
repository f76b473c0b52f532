"""Reads and writes of the referral hub's tables, turning rows into domain objects.

The personal parts of a referral are sealed here on the way in and unsealed on the way
out; nothing above this module sees a ciphertext, nothing below it sees a name. Writes
take lists so that a bulk intake's chunk is a handful of multi-row inserts.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from concord_contracts.codes import (
    AgeBand,
    AgeingBucket,
    Agency,
    AgencyStatus,
    Annotation,
    Category,
    Channel,
    CloseReason,
    ConsentGivenBy,
    ConsentStatus,
    DeclineReason,
    Flag,
    HashAlgorithm,
    HopKind,
    IncidentType,
    LegalBasis,
    ReporterKind,
    RevokeReason,
    RiskIndicator,
    Sex,
    Stage,
    Urgency,
)
from concord_contracts.rpc import ContactSchema, ReportedChildSchema
from concord_kit import crypto, upsert
from referral.domain import (
    AGEING_LIMITS,
    EVERY_ROW,
    FLAG_BITS,
    FUNNEL,
    OPEN_STAGES,
    URGENCY_RANK,
    AgencyState,
    Consent,
    Cursor,
    Hop,
    IntakeCursor,
    Pipeline,
    PipelineFilters,
    RoutingDecision,
    Triage,
    count_changes,
    count_keys,
    counted_keys,
    facet_filter,
    facets,
    funnel_changes,
    mask,
    reached,
    stored_count_keys,
    stored_reached,
)
from referral.models import (
    ANSWERED,
    agency_statuses,
    child_keys,
    pipeline,
    pipeline_counts,
    pipeline_facets,
    pipeline_funnel_counts,
    pipeline_hops,
    possible_duplicates,
    referrals,
    routing_decisions,
)


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite hands times back without their offset; every time here was written in UTC."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def _aware_or_none(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else _aware(value)


def _optional(code_type, value):
    return None if value is None else code_type(value)


@dataclass(frozen=True)
class NewReferral:
    """Everything the hub records when it takes a referral in (one transaction)."""

    coordination_id: uuid.UUID
    received_at: dt.datetime
    submission: Mapping[str, Any]  # as ReferralSubmissionSchema loads it, completed by channel
    triage: Triage
    decision: RoutingDecision
    row: Pipeline
    submitted_by: str
    submitter_role: str
    consent: Consent | None
    identity_keys: Sequence[str]  # blind-indexed already
    submission_digest: str | None


@dataclass(frozen=True)
class KnownKey:
    """A referral registered before under an idempotency key."""

    coordination_id: uuid.UUID
    digest: str | None
    urgency: Urgency
    routing_rule: str
    triage_rule: str | None
    received_at: dt.datetime


@dataclass(frozen=True)
class DuplicatePair:
    coordination_id: uuid.UUID
    channel: Channel
    received_at: dt.datetime
    status: str


_CHILD, _CONTACT = ReportedChildSchema(), ContactSchema()  # one of each, not one per report

_PENDING_COUNTS = "referral.pipeline_count_changes"
_PENDING_FUNNEL = "referral.pipeline_funnel_changes"
"""Where a session collects how the kept counts and funnel move until it commits
(`session.info`)."""

_REACHED_AT = {
    Stage.triaged: pipeline.c.triaged_at,
    Stage.routed: pipeline.c.routed_at,
    Stage.in_care: pipeline.c.in_care_at,
    Stage.closed: pipeline.c.closed_at,
}
"""The first time of each stage past `received`: set, the row reached it (the funnel)."""


def _apply_count_changes(session: Session) -> None:
    """Move the kept counts and funnel by what this transaction changed, as its last
    statements: in one order (the counts by key and stage, then the funnel by key, stage and
    stage reached), so two writers wait on each other's counts in turn and never in a
    circle, and held only for the commit, so a bulk chunk delays a single submission by
    its commit at most (one statement per table on PostgreSQL: `upsert.add_to`). Exact:
    the counts commit with the rows or not at all."""
    pending = session.info.pop(_PENDING_COUNTS, None) or {}
    funnel = session.info.pop(_PENDING_FUNNEL, None) or {}
    counts = sorted((key, str(stage), n) for (stage, key), n in pending.items() if n)
    steps = sorted((key, str(stage), str(step), n) for (stage, step, key), n in funnel.items() if n)
    upsert.add_to(
        session,
        pipeline_counts,
        [{"key": k, "stage": stage, "n": n} for k, stage, n in counts],
        ("key", "stage"),
        "n",
    )
    upsert.add_to(
        session,
        pipeline_funnel_counts,
        [{"key": k, "stage": stage, "reached": step, "n": n} for k, stage, step, n in steps],
        ("key", "stage", "reached"),
        "n",
    )


class ReferralRepository:
    def __init__(self, session: Session):
        self.session = session

    # --- intake ---------------------------------------------------------------------

    def add_referrals(self, items: Sequence[NewReferral]) -> None:
        """Store new referrals with their pipeline rows, agencies, timeline, routing
        decisions and blind-indexed identity keys: one multi-row insert per table."""
        if not items:
            return
        self.session.execute(referrals.insert(), [self._referral_values(i) for i in items])
        self.session.execute(pipeline.insert(), [self._pipeline_values(i.row) for i in items])
        for item in items:
            self._count(None, item.row)
        states = [
            {
                "coordination_id": str(i.coordination_id),
                **_sort_keys(i.row),
                **self._state_values(state),
            }
            for i in items
            for state in i.row.agencies.values()
        ]
        if states:
            self.session.execute(agency_statuses.insert(), states)
        self.session.execute(
            pipeline_facets.insert(),
            [_facet_values(i.row, facet) for i in items for facet in sorted(facets(i.row))],
        )
        hops = [self._hop_values(i.row.coordination_id, hop) for i in items for hop in i.row.hops]
        if hops:
            self.session.execute(pipeline_hops.insert(), hops)
        for item in items:
            item.row.hops.clear()
        decisions = [
            {
                "coordination_id": str(i.coordination_id),
                "decided_at": i.received_at,
                "decided_by": i.submitted_by,
                "role": i.submitter_role,
                "kind": "initial",
                "agencies": [str(a) for a in i.decision.agencies],
                "rule": i.decision.rule,
                "consent_status": None if i.consent is None else str(i.consent.status),
                "legal_basis": _legal_basis(i.consent),
                "legal_basis_decided_by": None
                if _legal_basis(i.consent) is None
                else i.submitted_by,
            }
            for i in items
        ]
        self.session.execute(routing_decisions.insert(), decisions)
        keys = [
            {
                "key": key,
                "coordination_id": str(i.coordination_id),
                "received_at": i.received_at,
                "channel": str(i.row.channel),
            }
            for i in items
            for key in sorted(set(i.identity_keys))
        ]
        if keys:
            self.session.execute(child_keys.insert(), keys)

    @staticmethod
    def _referral_values(item: NewReferral) -> dict[str, Any]:
        submission = item.submission
        reporter = submission.get("reporter")
        contact = (reporter or {}).get("contact")
        child = submission.get("child")
        sealed = crypto.seal(
            {
                "child": None if child is None else _CHILD.dump(child),
                "reporter_contact": None if contact is None else _CONTACT.dump(contact),
                "summary": submission.get("summary"),
            }
        )
        consent = item.consent
        return {
            "coordination_id": str(item.coordination_id),
            "received_at": item.received_at,
            "channel": str(submission["channel"]),
            "categories": [str(c) for c in submission["categories"]],
            "urgency": str(item.triage.urgency),
            "reporter_kind": None if reporter is None else str(reporter["kind"]),
            "consent_status": None if consent is None else str(consent.status),
            "consent_by": None if consent is None else consent.by,
            "legal_basis": _legal_basis(consent),
            "routing_rule": item.decision.rule,
            "submitted_by": item.submitted_by,
            "sealed_details": sealed,
            "stated_urgency": _optional(str, item.triage.stated),
            "triage_rule": item.triage.rule,
            "risk_indicators": [str(r) for r in submission.get("risk_indicators") or []],
            "annotations": [str(a) for a in submission.get("annotations") or []],
            "platform": submission.get("platform"),
            "incident_type": _optional(str, submission.get("incident_type")),
            "external_reference": submission.get("external_reference"),
            "file_hashes": [
                {"algorithm": str(h["algorithm"]), "digest": h["digest"].lower()}
                for h in submission.get("file_hashes") or []
            ],
            "requesting_country": submission.get("requesting_country"),
            "age_band": str(item.row.age_band),
            "idempotency_key": submission.get("idempotency_key"),
            "submission_digest": item.submission_digest,
            "consent_decided_by": None if consent is None else consent.decided_by,
            "consent_decided_at": None if consent is None else consent.decided_at,
            "linked_to": None,
        }

    def known_keys(self, keys: Iterable[str]) -> dict[str, KnownKey]:
        """The referrals already registered under these idempotency keys."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        rows = self.session.execute(
            sa.select(
                referrals.c.idempotency_key,
                referrals.c.coordination_id,
                referrals.c.submission_digest,
                referrals.c.urgency,
                referrals.c.routing_rule,
                referrals.c.triage_rule,
                referrals.c.received_at,
            ).where(referrals.c.idempotency_key.in_(wanted))
        ).mappings()
        return {
            row["idempotency_key"]: KnownKey(
                coordination_id=uuid.UUID(row["coordination_id"]),
                digest=row["submission_digest"],
                urgency=Urgency(row["urgency"]),
                routing_rule=row["routing_rule"],
                triage_rule=row["triage_rule"],
                received_at=_aware(row["received_at"]),
            )
            for row in rows
        }

    def routed_to(self, coordination_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[Agency]]:
        """The agencies each referral was first routed to (for a replayed receipt)."""
        ids = [str(c) for c in coordination_ids]
        if not ids:
            return {}
        rows = self.session.execute(
            sa.select(routing_decisions.c.coordination_id, routing_decisions.c.agencies)
            .where(routing_decisions.c.coordination_id.in_(ids))
            .where(routing_decisions.c.kind == "initial")
        ).mappings()
        return {uuid.UUID(r["coordination_id"]): [Agency(a) for a in r["agencies"]] for r in rows}

    # --- possible duplicates ----------------------------------------------------------

    def referrals_sharing_keys(
        self, keys: Iterable[str]
    ) -> list[tuple[str, uuid.UUID, Channel, dt.datetime]]:
        """(key, coordination id, channel, received at) of every referral holding a key."""
        wanted = sorted(set(keys))
        if not wanted:
            return []
        # A referral already linked as another's duplicate is represented by that other.
        rows = self.session.execute(
            sa.select(child_keys)
            .join(referrals, referrals.c.coordination_id == child_keys.c.coordination_id)
            .where(child_keys.c.key.in_(wanted))
            .where(referrals.c.linked_to.is_(None))
        ).mappings()
        return [
            (
                row["key"],
                uuid.UUID(row["coordination_id"]),
                Channel(row["channel"]),
                _aware(row["received_at"]),
            )
            for row in rows
        ]

    def add_possible_duplicates(self, pairs: Iterable[tuple[uuid.UUID, uuid.UUID]], at) -> int:
        """Record pairs not recorded before; returns how many were new."""
        wanted = {tuple(sorted((str(a), str(b)))) for a, b in pairs if a != b}
        if not wanted:
            return 0
        firsts = sorted({a for a, _ in wanted})
        existing = {
            (row.first, row.second)
            for row in self.session.execute(
                sa.select(possible_duplicates.c.first, possible_duplicates.c.second).where(
                    possible_duplicates.c.first.in_(firsts)
                )
            )
        }
        new = sorted(wanted - existing)
        if new:
            self.session.execute(
                possible_duplicates.insert(),
                [{"first": a, "second": b, "found_at": at, "status": "open"} for a, b in new],
            )
        return len(new)

    def duplicates_of(self, coordination_id: uuid.UUID) -> list[DuplicatePair]:
        cid = str(coordination_id)
        pairs = self.session.execute(
            sa.select(possible_duplicates).where(
                sa.or_(possible_duplicates.c.first == cid, possible_duplicates.c.second == cid)
            )
        ).mappings()
        others = {
            (row["second"] if row["first"] == cid else row["first"]): row["status"] for row in pairs
        }
        if not others:
            return []
        rows = self.session.execute(
            sa.select(pipeline.c.coordination_id, pipeline.c.channel, pipeline.c.received_at)
            .where(pipeline.c.coordination_id.in_(sorted(others)))
            .order_by(pipeline.c.received_at)
        ).mappings()
        return [
            DuplicatePair(
                uuid.UUID(row["coordination_id"]),
                Channel(row["channel"]),
                _aware(row["received_at"]),
                others[row["coordination_id"]],
            )
            for row in rows
        ]

    def set_duplicate_status(
        self, a: uuid.UUID, b: uuid.UUID, status: str, by: str, at: dt.datetime
    ) -> bool:
        first, second = sorted((str(a), str(b)))
        result = self.session.execute(
            possible_duplicates.update()
            .where(possible_duplicates.c.first == first)
            .where(possible_duplicates.c.second == second)
            .values(status=status, decided_by=by, decided_at=at)
        )
        return cast(sa.CursorResult, result).rowcount > 0

    def has_open_duplicates(self, coordination_id: uuid.UUID) -> bool:
        """Whether a possible duplicate of this referral still waits for a decision (one
        linked as another's duplicate since is represented by that other)."""
        cid = str(coordination_id)
        d = possible_duplicates.c
        other = sa.case((d.first == cid, d.second), else_=d.first)
        return (
            self.session.execute(
                sa.select(sa.literal(1))
                .select_from(possible_duplicates)
                .join(referrals, referrals.c.coordination_id == other)
                .where(d.status == "open")
                .where(sa.or_(d.first == cid, d.second == cid))
                .where(referrals.c.linked_to.is_(None))
                .limit(1)
            ).first()
            is not None
        )

    def paired_with(self, coordination_id: uuid.UUID) -> list[uuid.UUID]:
        """Every referral recorded as a possible duplicate of this one, whatever the status."""
        cid = str(coordination_id)
        d = possible_duplicates.c
        rows = self.session.execute(
            sa.select(d.first, d.second).where(sa.or_(d.first == cid, d.second == cid))
        ).all()
        return sorted({uuid.UUID(b if a == cid else a) for a, b in rows}, key=str)

    # --- the pipeline row -----------------------------------------------------------

    @staticmethod
    def _pipeline_values(row: Pipeline) -> dict[str, Any]:
        return {
            "coordination_id": str(row.coordination_id),
            "stage": str(row.stage),
            "urgency": str(row.urgency),
            "channel": str(row.channel),
            "categories": [str(c) for c in row.categories],
            "received_at": row.received_at,
            "flags": [str(f) for f in row.flags],
            "updated_at": row.updated_at or dt.datetime.now(dt.UTC),
            "urgency_rank": URGENCY_RANK[row.urgency],
            "flag_mask": mask(row.flags, FLAG_BITS),
            "age_band": str(row.age_band),
            "stage_since": row.stage_since or row.received_at,
            "triaged_at": row.triaged_at,
            "routed_at": row.routed_at,
            "in_care_at": row.in_care_at,
            "closed_at": row.closed_at,
            "close_reason": _optional(str, row.close_reason),
            "linked_to": _optional(str, row.linked_to),
            "due_at": row.due_at,
        }

    @staticmethod
    def _state_values(state: AgencyState) -> dict[str, Any]:
        return {
            "agency": str(state.agency),
            "routed": state.routed,
            "rule": state.rule,
            "status": str(state.status),
            "since": state.since,
            "detail": state.detail,
            "accepted_at": state.accepted_at,
            "last_sequence": state.last_sequence,
            "due_at": state.due_at,
            "breached_at": state.breached_at,
            "decline_reason": _optional(str, state.decline_reason),
            "suggested_agency": _optional(str, state.suggested_agency),
            "revoke_reason": _optional(str, state.revoke_reason),
        }

    @staticmethod
    def _hop_values(coordination_id: uuid.UUID, hop: Hop) -> dict[str, Any]:
        return {
            "coordination_id": str(coordination_id),
            "at": hop.at,
            "kind": str(hop.kind),
            "agency": _optional(str, hop.agency),
            "status": hop.status,
            "detail": hop.detail,
        }

    def add_pipeline(self, row: Pipeline) -> None:
        """One pipeline row with its agencies and hops (tests and single writes)."""
        self.session.execute(pipeline.insert().values(**self._pipeline_values(row)))
        self._count(None, row)
        for state in row.agencies.values():
            self.session.execute(
                agency_statuses.insert().values(
                    coordination_id=str(row.coordination_id),
                    **_sort_keys(row),
                    **self._state_values(state),
                )
            )
        self._write_facets(row)
        self._flush_hops(row)

    def _write_facets(self, row: Pipeline) -> set[str]:
        """The row's facets as they now are: the ones gone removed, the new ones added;
        the facets it held before."""
        cid = str(row.coordination_id)
        wanted = facets(row)
        held = set(
            self.session.execute(
                sa.select(pipeline_facets.c.facet).where(pipeline_facets.c.coordination_id == cid)
            ).scalars()
        )
        gone = held - wanted
        if gone:
            self.session.execute(
                pipeline_facets.delete()
                .where(pipeline_facets.c.coordination_id == cid)
                .where(pipeline_facets.c.facet.in_(sorted(gone)))
            )
        new = wanted - held
        if new:
            self.session.execute(
                pipeline_facets.insert(),
                [_facet_values(row, facet) for facet in sorted(new)],
            )
        return held

    def save_pipeline(self, row: Pipeline) -> None:
        """Write back the stage, flags, clocks and every agency's state of a pipeline row,
        and the hops it gained."""
        cid = str(row.coordination_id)
        values = self._pipeline_values(row)
        del values["coordination_id"]
        p = pipeline.c
        stored = self.session.execute(
            sa.select(
                p.stage,
                p.urgency,
                p.channel,
                p.flags,
                p.triaged_at,
                p.routed_at,
                p.in_care_at,
                p.closed_at,
            ).where(p.coordination_id == cid)
        ).one()
        self.session.execute(pipeline.update().where(p.coordination_id == cid).values(**values))
        for state in row.agencies.values():
            state_values = self._state_values(state)
            updated = self.session.execute(
                agency_statuses.update()
                .where(agency_statuses.c.coordination_id == cid)
                .where(agency_statuses.c.agency == state_values["agency"])
                .values(**state_values)
            )
            if cast(sa.CursorResult, updated).rowcount == 0:
                self.session.execute(
                    agency_statuses.insert().values(
                        coordination_id=cid, **_sort_keys(row), **state_values
                    )
                )
        held = self._write_facets(row)
        before = stored_count_keys(stored.urgency, stored.channel, stored.flags, held)
        steps = stored_reached(
            stored.triaged_at, stored.routed_at, stored.in_care_at, stored.closed_at
        )
        self._count((Stage(stored.stage), steps, before), row)
        self._flush_hops(row)

    def _count(self, before: tuple[Stage, set[Stage], set[str]] | None, row: Pipeline) -> None:
        """Note how this row, from `before` (stage, stages reached, count keys; None for a
        new row), moves the kept counts and funnel; they move when the transaction commits."""
        pending = self.session.info.get(_PENDING_COUNTS)
        if pending is None:
            pending = self.session.info[_PENDING_COUNTS] = {}
            self.session.info[_PENDING_FUNNEL] = {}
            sa.event.listen(self.session, "before_commit", _apply_count_changes)
        funnel = self.session.info[_PENDING_FUNNEL]
        keys = count_keys(row)
        was = None if before is None else (before[0], before[2])
        for slot, n in count_changes(was, (row.stage, keys)).items():
            pending[slot] = pending.get(slot, 0) + n
        for step, n in funnel_changes(before, (row.stage, reached(row), keys)).items():
            funnel[step] = funnel.get(step, 0) + n

    def _flush_hops(self, row: Pipeline) -> None:
        if row.hops:
            self.session.execute(
                pipeline_hops.insert(),
                [self._hop_values(row.coordination_id, hop) for hop in row.hops],
            )
            row.hops.clear()

    def pipeline(self, coordination_id: uuid.UUID, *, lock: bool = False) -> Pipeline | None:
        """One pipeline row with its agencies; `lock` holds it until the transaction ends
        (PostgreSQL), so that two changes to one referral are applied one after the other."""
        cid = str(coordination_id)
        query = sa.select(pipeline).where(pipeline.c.coordination_id == cid)
        if lock:
            query = query.with_for_update()
        found = self.session.execute(query).mappings().first()
        if found is None:
            return None
        return self._row(found, self._states([cid]).get(cid, {}))

    def _states(self, cids: Sequence[str]) -> dict[str, dict[Agency, AgencyState]]:
        result: dict[str, dict[Agency, AgencyState]] = {}
        if not cids:
            return result
        rows = self.session.execute(
            sa.select(agency_statuses).where(agency_statuses.c.coordination_id.in_(list(cids)))
        ).mappings()
        for state in rows:
            agency = Agency(state["agency"])
            result.setdefault(state["coordination_id"], {})[agency] = AgencyState(
                agency=agency,
                status=AgencyStatus(state["status"]),
                since=_aware(state["since"]),
                routed=bool(state["routed"]),
                rule=state["rule"],
                detail=state["detail"],
                accepted_at=_aware_or_none(state["accepted_at"]),
                last_sequence=int(state["last_sequence"]),
                due_at=_aware_or_none(state["due_at"]),
                breached_at=_aware_or_none(state["breached_at"]),
                decline_reason=_optional(DeclineReason, state["decline_reason"]),
                suggested_agency=_optional(Agency, state["suggested_agency"]),
                revoke_reason=_optional(RevokeReason, state["revoke_reason"]),
            )
        return result

    @staticmethod
    def _row(found: Any, agencies: Mapping[Agency, AgencyState]) -> Pipeline:
        return Pipeline(
            coordination_id=uuid.UUID(found["coordination_id"]),
            stage=Stage(found["stage"]),
            urgency=Urgency(found["urgency"]),
            channel=Channel(found["channel"]),
            categories=tuple(Category(c) for c in found["categories"]),
            received_at=_aware(found["received_at"]),
            agencies={a: agencies[a] for a in Agency if a in agencies},
            flags=[Flag(f) for f in found["flags"]],
            age_band=AgeBand(found["age_band"]),
            stage_since=_aware(found["stage_since"]),
            triaged_at=_aware_or_none(found["triaged_at"]),
            routed_at=_aware_or_none(found["routed_at"]),
            in_care_at=_aware_or_none(found["in_care_at"]),
            closed_at=_aware_or_none(found["closed_at"]),
            close_reason=_optional(CloseReason, found["close_reason"]),
            linked_to=_optional(uuid.UUID, found["linked_to"]),
            updated_at=_aware(found["updated_at"]),
        )

    def hops(self, coordination_id: uuid.UUID) -> list[Hop]:
        rows = self.session.execute(
            sa.select(pipeline_hops)
            .where(pipeline_hops.c.coordination_id == str(coordination_id))
            .order_by(pipeline_hops.c.id)
        ).mappings()
        return [
            Hop(
                at=_aware(row["at"]),
                kind=HopKind(row["kind"]),
                agency=_optional(Agency, row["agency"]),
                status=row["status"],
                detail=row["detail"],
            )
            for row in rows
        ]

    # --- details and the intake officer's view ------------------------------------------

    def _referral_row(self, coordination_id: uuid.UUID) -> Any:
        return (
            self.session.execute(
                sa.select(referrals).where(referrals.c.coordination_id == str(coordination_id))
            )
            .mappings()
            .first()
        )

    def details(self, coordination_id: uuid.UUID) -> dict[str, Any] | None:
        """The referral as reported, unsealed, in the shape ReferralDetailsSchema dumps."""
        row = self._referral_row(coordination_id)
        if row is None:
            return None
        return self._as_reported(row)

    def _as_reported(self, row: Mapping[str, Any]) -> dict[str, Any]:
        personal = crypto.unseal(row["sealed_details"])
        child = personal.get("child")
        if child is not None:
            child = dict(child)
            if child.get("sex") is not None:
                child["sex"] = Sex(child["sex"])
            if child.get("date_of_birth") is not None:
                child["date_of_birth"] = dt.date.fromisoformat(child["date_of_birth"])
        reporter = None
        if row["reporter_kind"] is not None:
            reporter = {
                "kind": ReporterKind(row["reporter_kind"]),
                "contact": personal.get("reporter_contact"),
            }
        consent = None
        if row["consent_status"] is not None:
            consent = {
                "status": ConsentStatus(row["consent_status"]),
                "by": ConsentGivenBy(row["consent_by"]),
                "legal_basis": _optional(LegalBasis, row["legal_basis"]),
            }
        return {
            "coordination_id": uuid.UUID(row["coordination_id"]),
            "received_at": _aware(row["received_at"]),
            "channel": Channel(row["channel"]),
            "categories": [Category(c) for c in row["categories"]],
            "urgency": Urgency(row["urgency"]),
            "child": child,
            "reporter": reporter,
            "summary": personal.get("summary"),
            "consent": consent,
            "risk_indicators": [RiskIndicator(r) for r in row["risk_indicators"]],
            "annotations": [Annotation(a) for a in row["annotations"]],
            "platform": row["platform"],
            "incident_type": _optional(IncidentType, row["incident_type"]),
            "external_reference": row["external_reference"],
            "file_hashes": [
                {"algorithm": HashAlgorithm(h["algorithm"]), "digest": h["digest"]}
                for h in row["file_hashes"]
            ],
            "requesting_country": row["requesting_country"],
        }

    def referral_record(self, coordination_id: uuid.UUID) -> dict[str, Any] | None:
        """Everything the intake officer sees of a referral but its pipeline row: as
        reported, triage, consent record, routing decisions, duplicates, links."""
        row = self._referral_row(coordination_id)
        if row is None:
            return None
        reported = self._as_reported(row)
        if reported["consent"] is not None:
            reported["consent"] = {
                **reported["consent"],
                "decided_by": row["consent_decided_by"],
                "decided_at": _aware_or_none(row["consent_decided_at"]),
            }
        cid = str(coordination_id)
        decisions = self.session.execute(
            sa.select(routing_decisions)
            .where(routing_decisions.c.coordination_id == cid)
            .order_by(routing_decisions.c.id)
        ).mappings()
        linked = self.session.execute(
            sa.select(referrals.c.coordination_id)
            .where(referrals.c.linked_to == cid)
            .order_by(referrals.c.received_at)
        ).scalars()
        return {
            **reported,
            "submitted_by": row["submitted_by"],
            "idempotency_key": row["idempotency_key"],
            "age_band": AgeBand(row["age_band"]),
            "triage": {
                "stated_urgency": _optional(Urgency, row["stated_urgency"]),
                "urgency": Urgency(row["urgency"]),
                "rule": row["triage_rule"],
                "risk_indicators": reported["risk_indicators"],
            },
            "routing": [
                {
                    "decided_at": _aware(d["decided_at"]),
                    "decided_by": d["decided_by"],
                    "role": d["role"],
                    "kind": d["kind"],
                    "agencies": [Agency(a) for a in d["agencies"]],
                    "rule": d["rule"],
                    "consent_status": _optional(ConsentStatus, d["consent_status"]),
                    "legal_basis": _optional(LegalBasis, d["legal_basis"]),
                    "legal_basis_decided_by": d["legal_basis_decided_by"],
                }
                for d in decisions
            ],
            "linked_to": _optional(uuid.UUID, row["linked_to"]),
            "linked_referrals": [uuid.UUID(c) for c in linked],
        }

    def consent(self, coordination_id: uuid.UUID) -> Consent | None:
        row = self._referral_row(coordination_id)
        if row is None or row["consent_status"] is None:
            return None
        return Consent(
            status=ConsentStatus(row["consent_status"]),
            by=row["consent_by"],
            legal_basis=_optional(LegalBasis, row["legal_basis"]),
            decided_by=row["consent_decided_by"] or row["submitted_by"],
            decided_at=_aware(row["consent_decided_at"] or row["received_at"]),
        )

    def record_legal_basis(
        self, coordination_id: uuid.UUID, basis: LegalBasis, by: str, at: dt.datetime
    ) -> None:
        """A legal basis for sharing without consent, decided by `by` (an intake officer)."""
        values: dict[str, Any] = {
            "legal_basis": str(basis),
            "consent_decided_by": by,
            "consent_decided_at": at,
        }
        current = self._referral_row(coordination_id)
        if current is not None and current["consent_status"] is None:
            # A child's own report carried no consent: none was sought from anyone.
            values.update(consent_status=str(ConsentStatus.not_sought), consent_by="not_applicable")
        self.session.execute(
            referrals.update()
            .where(referrals.c.coordination_id == str(coordination_id))
            .values(**values)
        )

    def add_routing_decision(
        self,
        coordination_id: uuid.UUID,
        *,
        at: dt.datetime,
        by: str,
        role: str,
        agencies: Sequence[Agency],
        rule: str,
        consent: Consent | None,
        legal_basis_by: str | None,
    ) -> None:
        self.session.execute(
            routing_decisions.insert().values(
                coordination_id=str(coordination_id),
                decided_at=at,
                decided_by=by,
                role=role,
                kind="reroute",
                agencies=[str(a) for a in agencies],
                rule=rule,
                consent_status=None if consent is None else str(consent.status),
                legal_basis=_legal_basis(consent),
                legal_basis_decided_by=legal_basis_by,
            )
        )

    def mark_linked(self, coordination_id: uuid.UUID, primary: uuid.UUID) -> None:
        self.session.execute(
            referrals.update()
            .where(referrals.c.coordination_id == str(coordination_id))
            .values(linked_to=str(primary))
        )

    # --- the agencies' waiting lists ----------------------------------------------------

    def intake_queue(
        self, agency: Agency, limit: int, after: IntakeCursor | None = None
    ) -> tuple[list[dict[str, Any]], IntakeCursor | None]:
        """One page of the referrals routed to `agency`: what still waits for its answer
        first, most urgent first, then newest first (keyset: `after` is where the previous
        page ended), and where the next page starts, None on the last."""
        # The page is chosen on agency_statuses alone, walking `ix_agency_statuses_queue`
        # in its order and stopping at the page's end; pipeline is joined for its rows only.
        s = agency_statuses.c
        in_group = (s.urgency_rank, s.received_at.desc(), s.coordination_id)

        def walk(*where: Any, order: Sequence[Any] = (ANSWERED, *in_group)) -> sa.Select:
            return (
                sa.select(
                    s.coordination_id,
                    s.status,
                    s.since,
                    s.due_at,
                    s.urgency_rank,
                    s.received_at,
                    ANSWERED.label("answered"),
                )
                .where(s.agency == str(agency), s.routed.is_(True), *where)
                .order_by(*order)
                .limit(limit + 1)
            )

        if after is None:
            page = walk().subquery("page")
        else:
            # The order's directions differ (newest first, ids upwards), so no row
            # comparison says "after the cursor", and an OR of key-by-key conditions only
            # filters a walk from the agency's first row (page n read n pages). Instead: the
            # index ranges that follow the cursor, each walked from its start and cut at
            # limit + 1, then merged. "IS false", not "NOT": PostgreSQL rewrites
            # NOT (a <> b) to a = b, no longer the indexed expression. A range is ordered
            # without the group it fixes: SQLite sorts the whole range when the order names
            # that indexed expression.
            at = sa.literal(after.received_at, type_=s.received_at.type)
            group = ANSWERED.is_(sa.false()) if after.waiting else ANSWERED.is_(sa.true())
            rank = s.urgency_rank == after.urgency_rank
            ranges = [
                (group, rank, s.received_at == at, s.coordination_id > after.coordination_id),
                (group, rank, s.received_at < at),
                (group, s.urgency_rank > after.urgency_rank),
            ]
            if after.waiting:
                ranges.append((ANSWERED.is_(sa.true()),))
            walks = (walk(*where, order=in_group).subquery() for where in ranges)
            # Each range wrapped as a subquery: SQLite takes no LIMIT in a UNION's parts.
            ahead = sa.union_all(*(sa.select(w) for w in walks)).subquery()
            f = ahead.c
            page = (
                sa.select(ahead)
                .order_by(f.answered, f.urgency_rank, f.received_at.desc(), f.coordination_id)
                .limit(limit + 1)
                .subquery("page")
            )
        p = pipeline.c
        query = (
            sa.select(
                page.c.coordination_id,
                page.c.received_at,
                p.channel,
                p.categories,
                p.urgency,
                page.c.status,
                page.c.since,
                page.c.due_at,
            )
            .join(pipeline, p.coordination_id == page.c.coordination_id)
            .order_by(
                page.c.answered,
                page.c.urgency_rank,
                page.c.received_at.desc(),
                page.c.coordination_id,
            )
        )
        found = list(self.session.execute(query).mappings())
        items = [
            {
                "coordination_id": uuid.UUID(row["coordination_id"]),
                "received_at": _aware(row["received_at"]),
                "channel": Channel(row["channel"]),
                "categories": [Category(c) for c in row["categories"]],
                "urgency": Urgency(row["urgency"]),
                "status": AgencyStatus(row["status"]),
                "since": _aware(row["since"]),
                "due_at": _aware_or_none(row["due_at"]),
            }
            for row in found[:limit]
        ]
        following = IntakeCursor.of(items[-1]) if len(found) > limit else None
        return items, following

    # --- the coordinators' pipeline -----------------------------------------------------

    @staticmethod
    def _where(filters: PipelineFilters, with_facets: bool = True) -> list[Any]:
        p = pipeline.c
        clauses: list[Any] = []
        if filters.stages:
            clauses.append(p.stage.in_(sorted(str(s) for s in filters.stages)))
        if filters.urgencies:
            clauses.append(p.urgency_rank.in_(sorted(URGENCY_RANK[u] for u in filters.urgencies)))
        if filters.channels:
            clauses.append(p.channel.in_(sorted(str(c) for c in filters.channels)))
        if filters.flags:
            # The first clause lets PostgreSQL use the partial index of flagged rows.
            clauses.append(p.flag_mask != 0)
            clauses.append(p.flag_mask.op("&")(mask(filters.flags, FLAG_BITS)) != 0)
        if filters.received_from is not None:
            clauses.append(p.received_at >= filters.received_from)
        if filters.received_to is not None:
            clauses.append(p.received_at < filters.received_to)
        f = pipeline_facets.c
        for group in facet_filter(filters) if with_facets else ():
            clauses.append(
                sa.select(sa.literal(1))
                .where(f.coordination_id == p.coordination_id)
                .where(f.facet.in_(sorted(group)))
                .exists()
            )
        return clauses

    def page(
        self, filters: PipelineFilters, sort: str, limit: int, cursor: Cursor | None
    ) -> tuple[list[Pipeline], Cursor | None]:
        """One page of pipeline rows (keyset: `cursor` is where the previous page ended),
        and the cursor of the next page, None on the last."""
        groups = facet_filter(filters)
        if len(groups) == 1 and len(groups[0]) == 1:
            # One facet: its rows, in the board's order (their own sort keys), joined to the
            # pipeline; the page ends after `limit` of them, however rare the facet.
            [[facet]] = groups
            f = pipeline_facets.c
            by = f  # the sort keys
            source = pipeline.join(
                pipeline_facets,
                sa.and_(f.coordination_id == pipeline.c.coordination_id, f.facet == facet),
            )
            query = sa.select(pipeline).select_from(source)
            query = query.where(*self._where(filters, with_facets=False))
        else:
            by = pipeline.c
            query = sa.select(pipeline).where(*self._where(filters))
        if sort == "priority":
            key = (by.urgency_rank, by.received_at, by.coordination_id)
            if cursor is not None:
                query = query.where(
                    sa.tuple_(*key)
                    > sa.tuple_(
                        sa.literal(cursor.urgency_rank),
                        sa.literal(cursor.received_at, type_=by.received_at.type),
                        sa.literal(cursor.coordination_id),
                    )
                )
            query = query.order_by(*key)
        else:
            by_time = (by.received_at, by.coordination_id)
            if cursor is not None:
                after = sa.tuple_(*by_time)
                mark = sa.tuple_(
                    sa.literal(cursor.received_at, type_=by.received_at.type),
                    sa.literal(cursor.coordination_id),
                )
                query = query.where(after > mark if sort == "oldest" else after < mark)
            query = query.order_by(
                *(
                    by_time
                    if sort == "oldest"
                    else (by.received_at.desc(), by.coordination_id.desc())
                )
            )
        found = list(self.session.execute(query.limit(limit + 1)).mappings())
        more = len(found) > limit
        found = found[:limit]
        states = self._states([r["coordination_id"] for r in found])
        rows = [self._row(r, states.get(r["coordination_id"], {})) for r in found]
        following = None
        if more and rows:
            last = rows[-1]
            following = Cursor(
                sort, URGENCY_RANK[last.urgency], last.received_at, str(last.coordination_id)
            )
        return rows, following

    def counts(self, filters: PipelineFilters) -> dict[Stage, int]:
        """How many rows these filters match in each stage: from the kept counts when they
        can tell exactly (`counted_keys`), else by counting the matching rows."""
        keys = counted_keys(filters)
        if keys is None:
            rows = self.session.execute(
                sa.select(pipeline.c.stage, sa.func.count())
                .where(*self._where(filters))
                .group_by(pipeline.c.stage)
            ).all()
        else:
            c = pipeline_counts.c
            query = sa.select(c.stage, sa.func.sum(c.n)).where(c.key.in_(keys)).group_by(c.stage)
            if filters.stages:
                query = query.where(c.stage.in_(sorted(str(s) for s in filters.stages)))
            rows = self.session.execute(query).all()
        found = {Stage(stage): int(n) for stage, n in rows}
        return {stage: found.get(stage, 0) for stage in Stage}

    def _per_key_and_stage(self, *measures: Any) -> list[tuple[str, str, list[int]]]:
        """`measures` of the rows under each count key and stage, as the rows give them."""
        p, f = pipeline.c, pipeline_facets.c
        selects = [
            sa.select(sa.literal(EVERY_ROW), p.stage, *measures).group_by(p.stage),
            sa.select(sa.literal("urgency:") + p.urgency, p.stage, *measures).group_by(
                p.urgency, p.stage
            ),
            sa.select(sa.literal("channel:") + p.channel, p.stage, *measures).group_by(
                p.channel, p.stage
            ),
            sa.select(f.facet, p.stage, *measures)
            .join(pipeline, p.coordination_id == f.coordination_id)
            .group_by(f.facet, p.stage),
            *(
                sa.select(sa.literal(f"flag:{flag.value}"), p.stage, *measures)
                .where(p.flag_mask.op("&")(bit) != 0)
                .group_by(p.stage)
                for flag, bit in FLAG_BITS.items()
            ),
        ]
        return [
            (key, stage, [int(n) for n in ns])
            for select in selects
            for key, stage, *ns in self.session.execute(select)
        ]

    def counts_of_rows(self) -> dict[tuple[str, str], int]:
        """The kept counts as the rows themselves give them, (key, stage) -> n: what
        `pipeline_counts` must hold (its tests compare the two)."""
        return {(key, stage): n for key, stage, [n] in self._per_key_and_stage(sa.func.count())}

    def funnel_of_rows(self) -> dict[tuple[str, str, str], int]:
        """The kept funnel as the rows themselves give it, (key, stage, stage reached) -> n,
        none of them 0: what `pipeline_funnel_counts` must hold, 0s aside."""
        steps = [str(step) for step in _REACHED_AT]
        measures = [sa.func.count(at) for at in _REACHED_AT.values()]
        return {
            (key, stage, step): n
            for key, stage, ns in self._per_key_and_stage(*measures)
            for step, n in zip(steps, ns, strict=True)
            if n
        }

    def recount(self) -> None:
        """Count the kept counts and funnel again from the rows (after rows were written
        around the hub, as the benchmark's copies are)."""
        counted = self.counts_of_rows()
        self.session.execute(pipeline_counts.delete())
        if counted:
            self.session.execute(
                pipeline_counts.insert(),
                [{"key": k, "stage": stage, "n": n} for (k, stage), n in sorted(counted.items())],
            )
        funnel = self.funnel_of_rows()
        self.session.execute(pipeline_funnel_counts.delete())
        if funnel:
            self.session.execute(
                pipeline_funnel_counts.insert(),
                [
                    {"key": k, "stage": stage, "reached": step, "n": n}
                    for (k, stage, step), n in sorted(funnel.items())
                ],
            )

    def funnel(self, filters: PipelineFilters) -> dict[Stage, int]:
        """How many referrals reached each stage (received is every one): from the kept
        counts and funnel under the filters they answer exactly (`counted_keys`, as
        `counts`), in one statement (one snapshot), else by counting the matching rows."""
        keys = counted_keys(filters)
        if keys is None:
            measures = {Stage.received: sa.func.count()} | {
                stage: sa.func.count(at) for stage, at in _REACHED_AT.items()
            }
            row = self.session.execute(
                sa.select(*[measures[s] for s in FUNNEL]).where(*self._where(filters))
            ).one()
            return {stage: int(n or 0) for stage, n in zip(FUNNEL, row, strict=True)}
        c, f = pipeline_counts.c, pipeline_funnel_counts.c
        received = sa.select(sa.literal(Stage.received.value), sa.func.sum(c.n)).where(
            c.key.in_(keys)
        )
        steps = sa.select(f.reached, sa.func.sum(f.n)).where(f.key.in_(keys)).group_by(f.reached)
        if filters.stages:
            stages = sorted(str(s) for s in filters.stages)
            received = received.where(c.stage.in_(stages))
            steps = steps.where(f.stage.in_(stages))
        found = {
            Stage(s): int(n or 0) for s, n in self.session.execute(sa.union_all(received, steps))
        }
        return {stage: found.get(stage, 0) for stage in FUNNEL}

    def ageing(
        self, filters: PipelineFilters, now: dt.datetime
    ) -> dict[Stage, dict[AgeingBucket, int]]:
        """How long the open items have waited in their current stage, bucketed. Under the
        filters the kept counts answer (`counted_keys`): only the items that waited less than
        the last limit are counted, as ranges of `ix_pipeline_stage_since` (stage,
        stage_since); the others are the stage's kept count less those, in the same
        statement (one snapshot). Otherwise every matching open item is counted."""
        p = pipeline.c
        limits = [(bucket, limit) for bucket, limit in AGEING_LIMITS if limit is not None]
        longest = AGEING_LIMITS[-1][0]
        bucket = sa.case(
            *[(p.stage_since > now - limit, b.value) for b, limit in limits],
            else_=longest.value,
        )
        open_stages = [str(s) for s in OPEN_STAGES if not filters.stages or s in filters.stages]
        result = {stage: {b: 0 for b, _ in AGEING_LIMITS} for stage in OPEN_STAGES}
        if not open_stages:
            return result
        counted = (
            sa.select(p.stage, bucket, sa.func.count())
            .where(*self._where(filters))
            .where(p.stage.in_(open_stages))
            .group_by(p.stage, bucket)
        )
        keys = counted_keys(filters)
        if keys is None:
            rows = self.session.execute(counted).all()
        else:
            c = pipeline_counts.c
            # A total per stage, marked by a bucket name no row is counted under.
            kept = (
                sa.select(c.stage, sa.literal("", sa.String), sa.func.sum(c.n))
                .where(c.key.in_(keys))
                .where(c.stage.in_(open_stages))
                .group_by(c.stage)
            )
            recent = counted.where(p.stage_since > now - limits[-1][1])
            rows = self.session.execute(sa.union_all(recent, kept)).all()
        totals: dict[Stage, int] = {}
        for stage, name, n in rows:
            if name:
                result[Stage(stage)][AgeingBucket(name)] = int(n)
            else:
                totals[Stage(stage)] = int(n or 0)
        for stage, total in totals.items():
            result[stage][longest] = total - sum(result[stage].values())
        return result

    def last_change(self) -> dt.datetime | None:
        value = self.session.execute(sa.select(sa.func.max(pipeline.c.updated_at))).scalar()
        return _aware_or_none(value)

    def version(self, settle: dt.timedelta = dt.timedelta(seconds=10)) -> tuple[Any, int]:
        """The last change, and how many rows changed in the `settle` before it: a change
        committed a moment after a later-stamped one still moves the count (two index
        lookups, whatever the size of the pipeline)."""
        last = self.last_change()
        if last is None:
            return None, 0
        recent = self.session.execute(
            sa.select(sa.func.count())
            .select_from(pipeline)
            .where(pipeline.c.updated_at >= last - settle)
        ).scalar_one()
        return last, int(recent)

    # --- clocks -----------------------------------------------------------------------

    def clocks_due(self, now: dt.datetime, limit: int = 500) -> list[uuid.UUID]:
        """The referrals with a clock that ran out by `now` and is not marked yet."""
        a = agency_statuses.c
        rows = self.session.execute(
            sa.select(a.coordination_id)
            .where(a.due_at.is_not(None))
            .where(a.breached_at.is_(None))
            .where(a.due_at <= now)
            .order_by(a.due_at)
            .limit(limit)
        ).scalars()
        seen: dict[str, None] = {}
        for cid in rows:
            seen.setdefault(cid, None)
        return [uuid.UUID(c) for c in seen]


def _sort_keys(row: Pipeline) -> dict[str, Any]:
    """The referral's place in the board's and the intake queue's orders, copied onto its
    facet and agency rows (never changed after intake)."""
    return {"urgency_rank": URGENCY_RANK[row.urgency], "received_at": row.received_at}


def _facet_values(row: Pipeline, facet: str) -> dict[str, Any]:
    return {"facet": facet, "coordination_id": str(row.coordination_id), **_sort_keys(row)}


def _legal_basis(consent: Consent | None) -> str | None:
    return None if consent is None or consent.legal_basis is None else str(consent.legal_basis)
