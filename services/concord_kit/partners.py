"""Partner statuses: each agency's small local copy of where its partners stand.

A social worker sees "investigation: charged, request abroad: sent" on the case without
asking anyone, because case_management keeps the statuses its partners announce on the
bus. justice_liaison and cross_border keep the same copy. This module is that copy,
written once:

- what an event tells about a partner (`updates_from`), in plain Python (the hub's decision
  to take a referral back from an agency is `concord_contracts.hub_decisions.HubDecision`);
- the rule that keeps the copy right when events arrive late, twice or out of order
  (`is_newer`, and `view` for which voice counts when two services speak of one agency);
- the table (`partner_status_table`, `partner_status_columns` for the migration) and the
  sequence-checked upsert (`PartnerStatuses.apply`);
- the hub's word that comes with the details an agency pulls when it accepts a referral
  (`hub_word`, kept by `PartnerStatuses.record_hub_word` with the record it opens).

Each row is one agency's status as one producer last told it, for one coordination id:
the hub speaks of every agency (pending acceptance, accepted), an agency's own service
speaks of its own record (a case's workflow status, an investigation's, a request's).
`sequence` is strictly increasing per producer and coordination id, so within one row a
lower or equal sequence is an older (or the same) word and is ignored. A redelivered
event is refused earlier by the inbox; this check is what keeps a reordered one out.

An acceptance is a word of the hub too: the pull it rests on answers "routed to you, as
of my sequence S" (`ReferralDetailsSchema.hub_status`), and the accepting service keeps it
in the row of its own agency in the unit of work that opens (or reopens) its record. A
decision of the hub older than that (a revocation, then a new routing, delivered late after
the acceptance) then finds a newer word and changes nothing; one newer than S still counts,
and one kept before the record commits refuses the acceptance (`accepted_on`).

Statuses are codes, times are UTC: nothing here is personal data.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from marshmallow import ValidationError
from sqlalchemy.orm import Session

from concord_contracts.codes import Agency, AgencyStatus
from concord_contracts.envelope import Envelope
from concord_contracts.hub_decisions import HubDecision
from concord_contracts.rpc import HubStatusSchema
from concord_kit import upsert

# --- the rules (no I/O) ----------------------------------------------------------------

HUB = "referral"
"""The producer that speaks of every agency: routing and acceptance."""

OWN_PRODUCER: Mapping[Agency, str] = {
    Agency.social_services: "case_management",
    Agency.justice: "justice_liaison",
    Agency.cross_border: "cross_border",
}
"""The service that owns each agency's record: its word on that agency outranks the hub's."""

# event type -> (the agency it speaks of, the payload field holding when)
_AGENCY_EVENTS: Mapping[str, tuple[Agency, str]] = {
    "case.opened": (Agency.social_services, "opened_at"),
    "case.status_changed": (Agency.social_services, "changed_at"),
    "investigation.opened": (Agency.justice, "opened_at"),
    "investigation.status_changed": (Agency.justice, "changed_at"),
    "request.filed": (Agency.cross_border, "filed_at"),
    "request.status_changed": (Agency.cross_border, "changed_at"),
}

PARTNER_EVENT_TYPES = frozenset(
    {"referral.routed", "referral.accepted", "referral.declined", "referral.revoked"}
    | set(_AGENCY_EVENTS)
)
"""Every event type that carries a partner status."""


@dataclass(frozen=True)
class PartnerUpdate:
    """What one event says of one agency.

    `status` is a code: the hub's `AgencyStatus` (pending_acceptance, accepted) or the
    partner's own workflow status (a `CaseStatus`, `InvestigationStatus`, `RequestStatus`).
    `due_at` is the legal deadline of a request abroad, when there is one."""

    agency: Agency
    status: str
    since: dt.datetime
    due_at: dt.datetime | None = None


@dataclass(frozen=True)
class PartnerStatus:
    """One agency's status as one producer last told it."""

    agency: Agency
    producer: str
    status: str
    since: dt.datetime
    due_at: dt.datetime | None
    last_sequence: int


def is_newer(sequence: int, last_applied: int | None) -> bool:
    """Apply an event only if it is newer than the last one applied from the same producer
    for the same agency: a duplicate (equal) or a late, older one (lower) changes nothing.
    `last_applied` is None when that producer never spoke of that agency."""
    return last_applied is None or sequence > last_applied


def updates_from(event: Envelope, own_agency: Agency) -> list[PartnerUpdate]:
    """The partner statuses an event (deserialised payload) carries, as seen by `own_agency`.

    A routing that does not name `own_agency` is none of its business: it will never hold
    that referral, so it keeps nothing of it."""
    payload = event.payload
    if event.event_type == "referral.routed":
        agencies = [Agency(a) for a in payload["agencies"]]
        if own_agency not in agencies:
            return []
        return [
            PartnerUpdate(agency, str(AgencyStatus.pending_acceptance), payload["routed_at"])
            for agency in agencies
        ]
    if event.event_type == "referral.accepted":
        return [
            PartnerUpdate(
                Agency(payload["agency"]), str(AgencyStatus.accepted), payload["accepted_at"]
            )
        ]
    if event.event_type == "referral.declined":
        return [
            PartnerUpdate(
                Agency(payload["agency"]), str(AgencyStatus.declined), payload["declined_at"]
            )
        ]
    if event.event_type == "referral.revoked":
        return [
            PartnerUpdate(
                Agency(payload["agency"]), str(AgencyStatus.revoked), payload["revoked_at"]
            )
        ]
    if event.event_type in _AGENCY_EVENTS:
        agency, time_field = _AGENCY_EVENTS[event.event_type]
        return [
            PartnerUpdate(
                agency, str(payload["status"]), payload[time_field], payload.get("due_at")
            )
        ]
    raise ValueError(f"{event.event_type} carries no partner status")


# The hub's statuses of an agency that take the referral from it.
WITHDRAWN = frozenset({str(AgencyStatus.revoked), str(AgencyStatus.declined)})


class WithdrawnMeanwhile(Exception):
    """The hub withdrew the referral from the agency after the pull an acceptance rests on."""


@dataclass(frozen=True)
class HubWord:
    """What the hub said of an agency when it answered that agency's pull: `update` (its
    status there, since when), as of the hub's event `sequence` for the referral."""

    sequence: int
    update: PartnerUpdate


def hub_word(details: Mapping[str, Any], own_agency: Agency) -> HubWord:
    """The hub's word on `own_agency` in pulled details (`ReferralDetailsSchema` JSON);
    ValueError when they carry none about it."""
    try:
        word = HubStatusSchema().load(details.get("hub_status") or {})
    except ValidationError as exc:
        raise ValueError(f"no readable hub status: {exc.normalized_messages()}") from None
    if word["agency"] != own_agency:
        raise ValueError(f"the hub status is of {word['agency']}, not {own_agency}")
    return HubWord(word["sequence"], PartnerUpdate(own_agency, str(word["status"]), word["since"]))


def view(
    statuses: Iterable[PartnerStatus], exclude: Agency | None = None
) -> dict[Agency, PartnerStatus]:
    """One status per agency: the agency's own service's word when it has spoken (it knows
    its record best: a case opened says more than "accepted"), the hub's otherwise.
    `exclude` leaves out the viewer's own agency."""
    chosen: dict[Agency, PartnerStatus] = {}
    for status in statuses:
        if status.agency == exclude:
            continue
        current = chosen.get(status.agency)
        own = OWN_PRODUCER.get(status.agency)
        if current is None or (status.producer == own and current.producer != own):
            chosen[status.agency] = status
    return dict(sorted(chosen.items()))


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands times back without their offset; every time Concord writes is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


# --- storage ---------------------------------------------------------------------------

TABLE_NAME = "partner_status"


def partner_status_columns() -> list[Any]:
    """Fresh columns of the partner-status table: for `models.py` and for the migration
    (`op.create_table(TABLE_NAME, *partner_status_columns())`)."""
    return [
        sa.Column("coordination_id", sa.String(36), primary_key=True),
        sa.Column("agency", sa.String(64), primary_key=True),
        sa.Column("producer", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(64), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_sequence", sa.Integer, nullable=False),
    ]


def partner_status_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(TABLE_NAME, metadata, *partner_status_columns())


def create_partner_status_table(op) -> None:
    """Call from a service's Alembic revision."""
    op.create_table(TABLE_NAME, *partner_status_columns())


class PartnerStatuses:
    """Reads and sequence-checked writes of one service's partner-status table, inside the
    caller's transaction (the handler's unit of work, after `first_delivery`)."""

    def __init__(self, session: Session, table: sa.Table):
        self.session = session
        self.table = table

    def apply(self, event: Envelope, own_agency: Agency) -> int:
        """Apply every partner status `event` carries; returns how many changed."""
        return sum(
            self.record(event.coordination_id, event.producer, event.sequence, update)
            for update in updates_from(event, own_agency)
        )

    def apply_hub_decision(self, event: Envelope, own_agency: Agency) -> HubDecision | None:
        """Keep a hub decision (`referral.revoked`/`declined`) as the partner status it is;
        answer it when it takes the referral from `own_agency` and is the hub's newest word
        on it (newer than an acceptance's pull too: `record_hub_word`), None when there is
        nothing more to do."""
        decision = HubDecision.from_event(event.event_type, event.payload)
        newest = self.apply(event, own_agency) > 0
        return decision if decision.agency == own_agency and newest else None

    def record_hub_word(self, coordination_id: uuid.UUID | str, word: HubWord) -> bool:
        """Keep the hub's word that came with a pull, in the unit of work that opens (or
        reopens) the record accepted on it: a hub event with its sequence or lower, arriving
        late, is then older than the acceptance, and `apply_hub_decision` ignores it (the
        inbox still records it). False when a newer word was already kept."""
        return self.record(coordination_id, HUB, word.sequence, word.update)

    def accepted_on(self, coordination_id: uuid.UUID | str, word: HubWord) -> None:
        """`record_hub_word` for an acceptance, refused (`WithdrawnMeanwhile`) when the word
        already kept is a newer withdrawal: the hub revoked or declined the routing after
        the pull, and its handler, finding no record yet, had nothing to close. Rolled back
        with the record, the acceptance then fails as a pull after the withdrawal would."""
        if self.record_hub_word(coordination_id, word):
            return
        t = self.table
        status = self.session.execute(
            sa.select(t.c.status).where(
                t.c.coordination_id == str(coordination_id),
                t.c.agency == str(word.update.agency),
                t.c.producer == HUB,
            )
        ).scalar()
        if status in WITHDRAWN:
            raise WithdrawnMeanwhile(
                f"the referral hub withdrew the referral from {word.update.agency} "
                "after this acceptance began"
            )

    def record(
        self, coordination_id: uuid.UUID | str, producer: str, sequence: int, update: PartnerUpdate
    ) -> bool:
        """Upsert one status if `sequence` is newer than what this producer last said of
        this agency; False when it is not (the row is left as it was)."""
        t = self.table
        key = sa.and_(
            t.c.coordination_id == str(coordination_id),
            t.c.agency == str(update.agency),
            t.c.producer == producer,
        )
        values = {
            "status": str(update.status),
            "since": update.since,
            "due_at": update.due_at,
            "last_sequence": sequence,
        }
        if upsert.supported(self.session):
            # One statement: insert, or update only when this sequence is newer (is_newer).
            return upsert.upsert_if_newer(
                self.session,
                t,
                {
                    "coordination_id": str(coordination_id),
                    "agency": str(update.agency),
                    "producer": producer,
                    **values,
                },
                key=("coordination_id", "agency", "producer"),
                sequence_column="last_sequence",
            )
        last = self._last_sequence(key)
        if last is None:
            try:
                with self.session.begin_nested():
                    self.session.execute(
                        t.insert().values(
                            coordination_id=str(coordination_id),
                            agency=str(update.agency),
                            producer=producer,
                            **values,
                        )
                    )
                return True
            except sa.exc.IntegrityError:
                # Another instance inserted this row first: compare with what it wrote.
                last = self._last_sequence(key)
        if not is_newer(sequence, last):
            return False
        self.session.execute(t.update().where(key).values(**values))
        return True

    def _last_sequence(self, key) -> int | None:
        return self.session.execute(
            sa.select(self.table.c.last_sequence).where(key).with_for_update()
        ).scalar()

    def of(self, coordination_id: uuid.UUID | str) -> list[PartnerStatus]:
        """Every status kept for one coordination id, as each producer last told it."""
        t = self.table
        rows = self.session.execute(
            sa.select(t).where(t.c.coordination_id == str(coordination_id))
        ).mappings()
        return [
            PartnerStatus(
                agency=Agency(row["agency"]),
                producer=row["producer"],
                status=row["status"],
                since=as_utc(row["since"]),  # type: ignore[arg-type]
                due_at=as_utc(row["due_at"]),
                last_sequence=int(row["last_sequence"]),
            )
            for row in rows
        ]


def as_response(statuses: Mapping[Agency, PartnerStatus]) -> dict[Agency, dict[str, Any]]:
    """`{agency: {status, since, due_at}}`, ready for `PartnerStatusSchema` to dump."""
    return {
        agency: {"status": s.status, "since": s.since, "due_at": s.due_at}
        for agency, s in statuses.items()
    }
