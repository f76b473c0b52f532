"""Cases social services registered themselves (issue 4): the hub's side.

A social worker may open a case without a referral (a child who walks in, a concern
raised in a visit). The case still needs a coordination id, and the coordinators must see
it in the pipeline. `case_management` asks the hub by RPC with codes alone (categories,
urgency): the child's record stays with social services. The hub records it as a referral
from the `social_services` channel, routed to social services only (rule
`direct_registration`), with no details to pull; `case.opened` from `case_management`
then marks it accepted and in care, as for any referral.

Written by the case-management backend as the smallest addition to the hub; it reuses
the hub's own intake (`_new_referral`, `add_referrals`, `_intake_events`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from marshmallow import ValidationError

from concord_contracts.cases import CaseRegistrationCodesSchema
from concord_contracts.codes import (
    Agency,
    Channel,
    ConsentGivenBy,
    ConsentStatus,
    LegalBasis,
    Organisation,
    ReporterKind,
    Role,
)
from concord_kit.errors import BadInput, Forbidden
from concord_kit.identity import Caller
from referral import domain
from referral.repository import ReferralRepository

DIRECT_RULE = "direct_registration"
REGISTRANTS = frozenset({Role.social_worker, Role.supervisor})
REGISTERED = "referral.registered_directly"


def may_register(caller: Caller) -> bool:
    return caller.agency == Organisation.social_services and caller.role in REGISTRANTS


def submission_for(codes: dict[str, Any]) -> dict[str, Any]:
    """The hub's record of a direct registration: codes only, no child, no summary. The
    legal basis for social services keeping a case is their statutory duty."""
    return {
        "channel": Channel.social_services,
        "categories": list(codes["categories"]),
        "urgency": codes["urgency"],
        "idempotency_key": f"direct-{codes['registration_id']}",
        "child": None,
        "reporter": {"kind": ReporterKind.social_worker, "contact": None},
        "summary": None,
        "consent": {
            "status": ConsentStatus.not_sought,
            "by": ConsentGivenBy.not_applicable,
            "legal_basis": LegalBasis.statutory_duty,
        },
    }


def register(service, caller: Caller, registration: Any) -> dict[str, Any]:
    """`referral.register_direct`: a coordination id and a pipeline row for a case social
    services registered; the same `registration_id` again answers the same, creating
    nothing."""
    if not may_register(caller):
        raise Forbidden("only social services staff register their own cases")
    if not isinstance(registration, dict):
        raise BadInput({"_schema": ["An object is expected."]})
    try:
        codes = CaseRegistrationCodesSchema().load(registration)
    except ValidationError as exc:
        raise BadInput(exc.normalized_messages()) from None
    submission = submission_for(codes)
    key = submission["idempotency_key"]
    now = service.hub.now()
    with service.db.unit_of_work() as uow:
        repository = ReferralRepository(uow.session)
        known = repository.known_keys([key]).get(key)
        if known is not None:
            return {
                "coordination_id": str(known.coordination_id),
                "received_at": known.received_at.isoformat(),
                "urgency": str(known.urgency),
                "routed_to": [str(Agency.social_services)],
            }
        item = service._new_referral(caller, submission, None, now)
        decision = domain.RoutingDecision((Agency.social_services,), DIRECT_RULE)
        facts = domain.ReferralFacts(
            channel=Channel.social_services,
            categories=tuple(submission["categories"]),
            urgency=item.row.urgency,
        )
        row = domain.Pipeline.open(
            item.coordination_id, facts, decision, now, service.hub.sla, item.triage.rule
        )
        item = dataclasses.replace(item, decision=decision, row=row)
        repository.add_referrals([item])
        uow.publish_many(service._intake_events([item]))
        uow.audit(REGISTERED, item.coordination_id, reason=f"routed by rule {DIRECT_RULE}")
    service.log.info(
        "referral_registered_directly",
        coordination_id=str(item.coordination_id),
        urgency=str(row.urgency),
    )
    return {
        "coordination_id": str(item.coordination_id),
        "received_at": now.isoformat(),
        "urgency": str(row.urgency),
        "routed_to": [str(Agency.social_services)],
    }
