"""The central authority's rules: who files, what each instrument may ask for, and the
legal deadline of every instrument, ordinary and emergency (shared/DOMAIN.md)."""

import datetime as dt
import uuid

import pytest

from concord_contracts.codes import (
    Agency,
    AgencyStatus,
    DeadlineClock,
    Instrument,
    InvestigationStatus,
    Measure,
    Organisation,
    RequestStatus,
    Role,
)
from concord_contracts.envelope import new_envelope
from concord_contracts.topology import CONSUMERS
from concord_kit import partners
from concord_kit.identity import Caller
from cross_border import domain
from cross_border.domain import Request, deadline
from cross_border.service import CrossBorderService

pytestmark = pytest.mark.unit

FILED = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
POLICE = Caller("po-1", Role.police_liaison_officer, Organisation.justice)
CENTRAL = Caller("ca-1", Role.central_authority_officer, Organisation.cross_border)
DAY, HOUR = dt.timedelta(days=1), dt.timedelta(hours=1)


@pytest.mark.parametrize(
    ("caller", "allowed"),
    [
        (POLICE, True),
        (CENTRAL, True),
        (Caller("sw", Role.social_worker, Organisation.social_services), False),
        (Caller("x", Role.central_authority_officer, Organisation.justice), False),
        (Caller("c", Role.coordinator, Organisation.coordination_body), False),
    ],
)
def test_who_may_file_a_request_abroad(caller, allowed):
    assert domain.may_file(caller).allowed is allowed


EPO, EIO = Instrument.european_production_order, Instrument.european_investigation_order
PRESERVATION, MLA = Instrument.european_preservation_order, Instrument.mutual_legal_assistance
DATA, ACK = DeadlineClock.data_production, DeadlineClock.acknowledgement
PRESERVED = DeadlineClock.preservation_period


@pytest.mark.parametrize(
    ("instrument", "emergency", "clock", "due_in", "silence_in"),
    [
        # Reg. 2023/1543 Art. 10(3) and 10(4)
        (EPO, False, DATA, 10 * DAY, None),
        (EPO, True, DATA, 8 * HOUR, None),
        # Dir. 2014/41 Art. 16(1): a week to acknowledge; an emergency is chased after a day.
        (EIO, False, ACK, 7 * DAY, None),
        (EIO, True, ACK, 7 * DAY, DAY),
        # Reg. 2023/1543 Art. 11(1); Budapest Convention Art. 29(7)
        (PRESERVATION, False, PRESERVED, 60 * DAY, 30 * DAY),
        (Instrument.preservation_request, False, PRESERVED, 60 * DAY, 30 * DAY),
        # No deadline in law: silence is tracked instead.
        (MLA, False, None, None, 30 * DAY),
        (MLA, True, None, None, DAY),
        (Instrument.police_cooperation, False, None, None, 30 * DAY),
    ],
)
def test_the_legal_deadline_of_each_instrument(instrument, emergency, clock, due_in, silence_in):
    result = deadline(instrument, emergency, FILED)
    assert result.clock == clock
    assert result.due_at == (FILED + due_in if due_in else None)
    assert result.silence_warning_at == (FILED + silence_in if silence_in else None)
    assert (result.source is None) == (due_in is None)


def test_every_legal_clock_names_its_source():
    for clock in [*domain.LEGAL_CLOCKS.values(), *domain.EMERGENCY_CLOCKS.values()]:
        assert clock.source and clock.limit > dt.timedelta(0)


def test_what_each_instrument_may_ask_for():
    epo = Instrument.european_production_order
    assert domain.problems(epo, [Measure.subscriber_data, Measure.traffic_data], FILED) == {}
    refused = domain.problems(epo, [Measure.subscriber_data, Measure.witness_hearing], FILED)
    assert set(refused) == {"measures"} and "witness_hearing" in refused["measures"][0]
    assert "measures" in domain.problems(
        Instrument.preservation_request, [Measure.content_data], FILED
    )
    assert (
        domain.problems(Instrument.mutual_legal_assistance, [Measure.witness_hearing], FILED) == {}
    )


def test_the_e_evidence_orders_apply_from_18_august_2026():
    before = dt.datetime(2026, 8, 17, 23, 0, tzinfo=dt.UTC)
    for instrument in (
        Instrument.european_production_order,
        Instrument.european_preservation_order,
    ):
        measure = (
            Measure.preservation
            if instrument == Instrument.european_preservation_order
            else Measure.subscriber_data
        )
        assert "instrument" in domain.problems(instrument, [measure], before)
        assert domain.problems(instrument, [measure], before + 2 * HOUR) == {}


def test_a_filed_request_is_sent_with_its_deadline_running():
    cid = uuid.uuid4()
    request = Request.file(
        cid,
        instrument=Instrument.european_production_order,
        executing_country="DE",
        emergency=True,
        measures=[Measure.subscriber_data],
        filed_by=POLICE,
        now=FILED,
    )
    assert request.status == RequestStatus.sent
    assert request.deadline.due_at == FILED + 8 * HOUR
    assert (request.filed_by, request.filed_by_agency) == ("po-1", Organisation.justice)
    assert request.measures == (Measure.subscriber_data,)


def test_partner_statuses_from_the_investigation_and_the_hub():
    cid = uuid.uuid4()

    def envelope(event_type, producer, payload, sequence):
        return new_envelope(
            event_type=event_type,
            schema_version=1,
            producer=producer,
            coordination_id=cid,
            sequence=sequence,
            correlation_id="test",
            payload=payload,
        )

    changed = envelope(
        "investigation.status_changed",
        "justice_liaison",
        {
            "investigation_id": uuid.uuid4(),
            "status": InvestigationStatus.charged,
            "changed_at": FILED,
        },
        4,
    )
    [update] = partners.updates_from(changed, domain.AGENCY)
    assert (update.agency, update.status) == (Agency.justice, "charged")
    accepted = envelope(
        "referral.accepted", "referral", {"agency": Agency.justice, "accepted_at": FILED}, 3
    )
    [update] = partners.updates_from(accepted, domain.AGENCY)
    assert update.status == AgencyStatus.accepted
    assert not partners.is_newer(3, 4) and partners.is_newer(5, 4)


def test_the_service_follows_exactly_the_events_the_topology_routes_to_it():
    handled = {e.event_type for e in CrossBorderService.track_partner.nameko_entrypoints}
    assert handled == set(CONSUMERS["cross_border"])
