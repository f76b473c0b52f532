"""The hub's decision that an agency no longer holds a referral, read from the events that
carry it (`referral.revoked`, `referral.declined`). Plain data: the agencies' domain
modules take it as it is, and `concord_kit.partners` keeps it as a partner status too."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from concord_contracts.codes import Agency, AgencyStatus


@dataclass(frozen=True)
class HubDecision:
    """The hub's decision that an agency no longer holds a referral, as the events
    `referral.revoked` and `referral.declined` carry it: `kind` is `revoked` or `declined`,
    `reason` the revoke or decline reason code (a revoke may give none), `at` when the hub
    decided."""

    agency: Agency
    kind: AgencyStatus
    reason: str | None
    at: dt.datetime

    @classmethod
    def from_event(cls, event_type: str, payload: Mapping[str, Any]) -> HubDecision:
        if event_type == "referral.revoked":
            kind, at = AgencyStatus.revoked, payload["revoked_at"]
        elif event_type == "referral.declined":
            kind, at = AgencyStatus.declined, payload["declined_at"]
        else:
            raise ValueError(f"{event_type} is not a hub decision")
        reason = payload.get("reason")
        return cls(Agency(payload["agency"]), kind, str(reason) if reason else None, at)
