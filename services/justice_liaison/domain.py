"""Police and justice work, in plain Python (no nameko, no SQL).

When the referral hub routes a referral to justice (every form of sexual exploitation or
abuse is a crime as well as a protection concern), a police liaison officer *accepts* it:
the service pulls the referral's details from the hub and opens an *investigation record*.
The record will grow into what a child-friendly justice record tracks (shared/DOMAIN.md:
proceedings, the individual assessment, representation, forensic interviews, court
accommodations, the outcome); evidence is only ever referenced by hash, never stored.

Beside its own records, the service keeps where its partners stand on each referral (the
social-services case, a request abroad), from their status events: see
`concord_kit.partners`.

The hub's decisions on a referral are followed (`Investigation.referral_withdrawn`). When
the hub *revokes* the routing to justice (consent withdrawn, sent in error, a better
agency, no longer needed) or records that justice *declined* it (one officer declining at
the hub while another accepted), justice no longer holds the referral. A record only
opened, with nothing recorded on it yet, closes with it. An investigation under way
stays: a crime being investigated does not end because a referral was withdrawn, so the
withdrawal goes to the audit trail and the hub's status, for the officer to decide. Only
the hub's newest word counts (its sequence): a late, older decision changes nothing. An
acceptance is such a word: the pull it rests on says "routed to justice, as of the hub's
sequence S", kept with the record it opens, so a decision the hub took before it (a
revocation, then a new routing, arriving late) leaves the record alone
(`concord_kit.partners`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from concord_contracts.codes import Agency, InvestigationStatus, Organisation, Role
from concord_contracts.hub_decisions import HubDecision

AGENCY = Agency.justice
"""The agency this service works for: the key of its own status in everyone's pipeline."""

ACCEPTING_ROLES = frozenset({Role.police_liaison_officer})
"""Who, in justice, may take a referral on (and open an investigation record for it)."""


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


def may_accept(person: Person) -> Decision:
    """A police liaison officer of justice accepts referrals for it; nobody else."""
    if person.agency != Organisation.justice or person.role not in ACCEPTING_ROLES:
        return Decision(False, f"{person.role} of {person.agency} does not accept for {AGENCY}")
    return Decision(True, f"{person.role} accepts for {AGENCY}")


class IncompleteDetails(Exception):
    """The hub's answer does not describe the referral that was asked for."""


@dataclass
class Investigation:
    """The investigation record of one referral (coordination id) taken on by justice.

    `details` are the referral's details as pulled from the hub (the JSON form of
    `ReferralDetailsSchema`): personal data, stored sealed."""

    investigation_id: uuid.UUID
    coordination_id: uuid.UUID
    status: InvestigationStatus
    opened_at: dt.datetime
    opened_by: str
    details: Mapping[str, Any]

    @classmethod
    def open(
        cls,
        coordination_id: uuid.UUID,
        details: Mapping[str, Any],
        accepted_by: Person,
        now: dt.datetime,
    ) -> Investigation:
        """The record a referral becomes when justice takes it on: opened, by the officer
        who accepted it."""
        if str(details.get("coordination_id")) != str(coordination_id):
            raise IncompleteDetails("the details are of another referral")
        return cls(
            investigation_id=uuid.uuid4(),
            coordination_id=coordination_id,
            status=InvestigationStatus.opened,
            opened_at=now,
            opened_by=accepted_by.user_id,
            details=dict(details),
        )

    def referral_withdrawn(self, decision: HubDecision) -> bool:
        """The hub no longer routes the referral to justice (revoked, or declined at the
        hub): a record only opened closes; one under way stays. True when it closed."""
        if decision.agency != AGENCY:
            raise ValueError(f"a decision about {decision.agency} is not this record's")
        if self.status != InvestigationStatus.opened:
            return False
        self.status = InvestigationStatus.closed
        return True
