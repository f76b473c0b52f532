"""The one event the throughput benchmark sends, registered in the contracts' catalogue by
the benchmark's own services only (never by Concord's).

Its payload has the shape and size of a real status event (`investigation.opened`: an
identifier, a status code, a time), so the raw broker, the naive nameko peer and Concord's
path all carry messages of the same size.
"""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from marshmallow import fields

from concord_contracts import events as catalogue
from concord_contracts.codes import Agency, InvestigationStatus
from concord_contracts.envelope import new_envelope
from concord_contracts.fields import Code, UtcDateTime
from concord_kit.partners import PartnerUpdate, partner_status_table

EVENT_TYPE = "bench.noted"
PRODUCER = "bench_outbox"
CONSUMER = "bench_inbox"


class BenchNoted(catalogue.Payload):
    """A status, as `investigation.opened` carries one."""

    investigation_id = fields.UUID(required=True)
    status = Code(InvestigationStatus, required=True)
    opened_at = UtcDateTime(required=True)


def register() -> None:
    catalogue.EVENTS.setdefault(
        EVENT_TYPE,
        catalogue.EventSpec(EVENT_TYPE, PRODUCER, 1, {1: BenchNoted}, "benchmark status"),
    )


def payload(sequence: int = 1) -> dict:
    statuses = list(InvestigationStatus)
    return {
        "investigation_id": uuid.uuid4(),
        "status": statuses[(sequence - 1) % len(statuses)],
        "opened_at": dt.datetime.now(dt.UTC),
    }


def sample_body() -> dict:
    """One envelope as it crosses the bus: what the raw baseline sends, byte for byte."""
    register()
    version, body = catalogue.dump_payload(EVENT_TYPE, payload())
    return new_envelope(
        event_type=EVENT_TYPE,
        schema_version=version,
        producer=PRODUCER,
        coordination_id=uuid.uuid4(),
        sequence=1,
        correlation_id=str(uuid.uuid4()),
        payload=body,
    ).to_message()


def projection_update(event_payload: dict) -> PartnerUpdate:
    """What the consumer projects: a partner status, through the kit's own projection code."""
    return PartnerUpdate(Agency.justice, str(event_payload["status"]), event_payload["opened_at"])


def projection_metadata() -> tuple[sa.MetaData, sa.Table]:
    metadata = sa.MetaData()
    return metadata, partner_status_table(metadata)


register()
