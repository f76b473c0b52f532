"""The central authority's work, in plain Python (no nameko, no SQL).

When the offender, the platform or the evidence sits abroad, police and justice need
another country to act: produce subscriber or traffic data, preserve it before it is
deleted, hear a witness. A *request* goes out under a legal *instrument* (mutual legal
assistance, a European Investigation Order, a European Production or Preservation Order,
a preservation request under the Budapest Convention, police-to-police cooperation) to
an *executing country*, asking for *measures*. A threat to a child makes it an
*emergency*.

Each instrument sets its own clock, and a request abroad that goes overdue unnoticed is
one of the seams where children are failed (shared/DESIGN.md). So every request carries
its legal deadline from the day it is filed (`deadline`, from the table `LEGAL_CLOCKS`),
or, where the law sets none, the date past which silence from abroad must be chased.

Who files: a police liaison officer (justice) or a central authority officer. In this
first version filing a request sends it; the review step of the central authority comes
with the request's full lifecycle (draft, under review, sent, acknowledged...).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from concord_contracts.codes import (
    Agency,
    DeadlineClock,
    Instrument,
    Measure,
    Organisation,
    RequestStatus,
    Role,
)

AGENCY = Agency.cross_border
"""The agency this service works for: the key of its own status in everyone's pipeline."""

FILERS: frozenset[tuple[Organisation, Role]] = frozenset(
    {
        (Organisation.justice, Role.police_liaison_officer),
        (Organisation.cross_border, Role.central_authority_officer),
    }
)
"""Who may file a request abroad: the investigating police, or the central authority."""


class Person(Protocol):
    """Whoever asks: the caller identity that travels with every call."""

    user_id: str
    role: Role
    agency: Organisation


@dataclass(frozen=True)
class Decision:
    """An answer to "may this person do this?", with the reason written to the audit trail."""

    allowed: bool
    reason: str


def may_file(person: Person) -> Decision:
    if (person.agency, person.role) not in FILERS:
        return Decision(False, f"{person.role} of {person.agency} does not file requests abroad")
    return Decision(True, f"{person.role} of {person.agency} files requests abroad")


# --- deadlines -------------------------------------------------------------------------


@dataclass(frozen=True)
class LegalClock:
    """A deadline the law sets: what must happen (`clock`), within how long of filing."""

    clock: DeadlineClock
    limit: dt.timedelta
    source: str


LEGAL_CLOCKS: Mapping[Instrument, LegalClock] = {
    # Dir. 2014/41/EU Art. 16(1) and Annex B: the executing authority acknowledges receipt
    # of an EIO within a week. (Then: recognition within 30 days, Art. 12(3), extendable
    # once by 30, Art. 12(5); execution within 90 days of recognition, Art. 12(4).)
    Instrument.european_investigation_order: LegalClock(
        DeadlineClock.acknowledgement, dt.timedelta(days=7), "Dir. 2014/41 Art. 16(1)"
    ),
    # Reg. (EU) 2023/1543 Art. 10(3): the service provider transmits the data at the latest
    # within 10 days of receiving the European Production Order Certificate.
    Instrument.european_production_order: LegalClock(
        DeadlineClock.data_production, dt.timedelta(days=10), "Reg. 2023/1543 Art. 10(3)"
    ),
    # Reg. (EU) 2023/1543 Art. 11(1): the data is preserved for 60 days (extendable by 30)
    # unless a request for its production follows: the follow-up is due before then.
    Instrument.european_preservation_order: LegalClock(
        DeadlineClock.preservation_period, dt.timedelta(days=60), "Reg. 2023/1543 Art. 11(1)"
    ),
    # Budapest Convention Art. 29(7): preservation lasts not less than 60 days, to let the
    # requesting party send its request for search, seizure or disclosure.
    Instrument.preservation_request: LegalClock(
        DeadlineClock.preservation_period, dt.timedelta(days=60), "Budapest Convention Art. 29(7)"
    ),
    # Mutual legal assistance (treaty based) and police-to-police cooperation: no deadline
    # in law. Their silence is tracked instead (SILENCE_WARNING_AFTER).
}
"""The legal deadline of each instrument, counted from filing (shared/DOMAIN.md)."""

EMERGENCY_CLOCKS: Mapping[Instrument, LegalClock] = {
    # Reg. (EU) 2023/1543 Art. 10(4): in an emergency, without undue delay and at the latest
    # within 8 hours of receiving the certificate.
    Instrument.european_production_order: LegalClock(
        DeadlineClock.data_production, dt.timedelta(hours=8), "Reg. 2023/1543 Art. 10(4)"
    ),
    # An emergency EIO keeps its one-week acknowledgement in law; provisional measures are
    # decided "wherever practicable within 24 hours" (Art. 32(2)), which DOMAIN.md marks
    # *check*: it is not a constant here until confirmed. The silence warning covers it.
}
"""Shorter legal deadlines that apply when a request is an emergency."""

SILENCE_WARNING_AFTER: Mapping[bool, dt.timedelta] = {
    False: dt.timedelta(days=30),
    True: dt.timedelta(hours=24),
}
"""Practice, not law (the central authority may set its own): how long a request abroad
may go unanswered before someone chases it, ordinary or emergency. Used where the law sets
no deadline, or sets a later one."""

APPLIES_FROM: Mapping[Instrument, dt.date] = {
    # Reg. (EU) 2023/1543 Art. 34: applies from 18 August 2026.
    Instrument.european_production_order: dt.date(2026, 8, 18),
    Instrument.european_preservation_order: dt.date(2026, 8, 18),
}
"""Instruments that cannot be used before a date."""


@dataclass(frozen=True)
class Deadline:
    """When an answer from abroad is due by law (`due_at`, with what is due and the source),
    and when silence should be chased (`silence_warning_at`) if that comes first."""

    clock: DeadlineClock | None
    due_at: dt.datetime | None
    source: str | None
    silence_warning_at: dt.datetime | None


def deadline(instrument: Instrument, emergency: bool, filed_at: dt.datetime) -> Deadline:
    """The deadline of a request filed at `filed_at` (UTC)."""
    legal = (EMERGENCY_CLOCKS.get(instrument) if emergency else None) or LEGAL_CLOCKS.get(
        instrument
    )
    due_at = filed_at + legal.limit if legal else None
    silence_at = filed_at + SILENCE_WARNING_AFTER[emergency]
    return Deadline(
        clock=legal.clock if legal else None,
        due_at=due_at,
        source=legal.source if legal else None,
        silence_warning_at=silence_at if due_at is None or silence_at < due_at else None,
    )


# --- what each instrument may ask for ---------------------------------------------------

DATA_MEASURES = frozenset(
    {
        Measure.subscriber_data,
        Measure.user_identification_data,
        Measure.traffic_data,
        Measure.content_data,
    }
)

ALLOWED_MEASURES: Mapping[Instrument, frozenset[Measure]] = {
    # Reg. (EU) 2023/1543 covers electronic evidence only: production orders ask for data
    # (Art. 5), preservation orders for its preservation (Art. 6).
    Instrument.european_production_order: DATA_MEASURES,
    Instrument.european_preservation_order: frozenset({Measure.preservation}),
    # Budapest Convention Art. 29: expedited preservation of stored computer data.
    Instrument.preservation_request: frozenset({Measure.preservation}),
    # EIO, mutual legal assistance and police cooperation cover any investigative measure.
}


def problems(
    instrument: Instrument, measures: Iterable[Measure], filed_at: dt.datetime
) -> dict[str, list[str]]:
    """What makes a request impossible under its instrument, per field (empty: none)."""
    errors: dict[str, list[str]] = {}
    applies_from = APPLIES_FROM.get(instrument)
    if applies_from is not None and filed_at.date() < applies_from:
        errors["instrument"] = [f"{instrument} applies from {applies_from.isoformat()}."]
    allowed = ALLOWED_MEASURES.get(instrument)
    if allowed is not None:
        refused = sorted(str(m) for m in measures if m not in allowed)
        if refused:
            errors["measures"] = [f"Not available under {instrument}: {', '.join(refused)}."]
    return errors


# --- the request -----------------------------------------------------------------------


@dataclass
class Request:
    """A request abroad about one referral (coordination id); a referral may have several."""

    request_id: uuid.UUID
    coordination_id: uuid.UUID
    instrument: Instrument
    executing_country: str
    emergency: bool
    measures: tuple[Measure, ...]
    status: RequestStatus
    filed_at: dt.datetime
    filed_by: str
    filed_by_agency: Organisation
    deadline: Deadline

    @classmethod
    def file(
        cls,
        coordination_id: uuid.UUID,
        *,
        instrument: Instrument,
        executing_country: str,
        emergency: bool,
        measures: Iterable[Measure],
        filed_by: Person,
        now: dt.datetime,
    ) -> Request:
        """A request filed now: sent, with its deadline running from now."""
        return cls(
            request_id=uuid.uuid4(),
            coordination_id=coordination_id,
            instrument=instrument,
            executing_country=executing_country,
            emergency=emergency,
            measures=tuple(measures),
            status=RequestStatus.sent,
            filed_at=now,
            filed_by=filed_by.user_id,
            filed_by_agency=filed_by.agency,
            deadline=deadline(instrument, emergency, now),
        )
