"""Every event in the catalogue has a valid example; schemas are closed and carry no
free text; the topology covers what is consumed; docs/events.md matches the code."""

import copy
from pathlib import Path

import pytest
from marshmallow import fields, validate

from concord_contracts import catalogue, topology
from concord_contracts.envelope import InvalidEvent
from concord_contracts.events import EVENTS, dump_payload, read_event

pytestmark = pytest.mark.contract
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("event_type", sorted(EVENTS))
def test_example_validates(event_type):
    event = read_event(catalogue.example(event_type))
    assert event.event_type == event_type
    assert event.producer == EVENTS[event_type].producer


@pytest.mark.parametrize("event_type", sorted(EVENTS))
def test_example_round_trips_through_the_producer_side(event_type):
    body = catalogue.example(event_type)
    parsed = read_event(body).payload
    version, dumped = dump_payload(event_type, parsed)
    assert version == body["schema_version"]
    assert dumped == body["payload"]


@pytest.mark.parametrize("event_type", sorted(EVENTS))
def test_payload_schemas_are_closed(event_type):
    body = catalogue.example(event_type)
    body["payload"]["child_name"] = "Talo Menri"
    with pytest.raises(InvalidEvent) as refused:
        read_event(body)
    assert "child_name" in str(refused.value.errors)


def _text_fields(schema_fields, path=""):
    """Every string field that is not constrained to a code: free text, which is forbidden."""
    for name, field in schema_fields.items():
        if isinstance(field, fields.List):
            field = field.inner
        if isinstance(field, fields.Nested):
            yield from _text_fields(field.schema.fields, f"{path}{name}.")
        elif type(field) is fields.String or isinstance(field, fields.Dict):
            constrained = any(
                isinstance(v, validate.Regexp | validate.OneOf) for v in field.validators
            )
            if not constrained:
                yield f"{path}{name}"


@pytest.mark.parametrize("event_type", sorted(EVENTS))
def test_payloads_hold_no_free_text(event_type):
    assert list(_text_fields(EVENTS[event_type].schema().fields)) == []


def test_an_envelope_missing_fields_is_refused_naming_them():
    body = catalogue.example("case.opened")
    del body["sequence"]
    del body["event_id"]
    with pytest.raises(InvalidEvent) as refused:
        read_event(body)
    assert set(refused.value.errors) == {"sequence", "event_id"}


def test_an_event_from_the_wrong_producer_is_refused():
    body = catalogue.example("case.opened")
    body["producer"] = "justice_liaison"
    with pytest.raises(InvalidEvent):
        read_event(body)


def test_unknown_versions_and_types_are_refused():
    body = catalogue.example("case.opened")
    for key, value in (("schema_version", 99), ("event_type", "case.vanished")):
        broken = copy.deepcopy(body)
        broken[key] = value
        with pytest.raises(InvalidEvent):
            read_event(broken)


def test_every_consumed_event_exists_and_every_consumer_has_queues():
    topology.check()
    for service in topology.CONSUMERS:
        main, retry, dead = topology.service_queues(service)
        assert main.name == f"concord.{service}.events"
        assert retry.queue_arguments["x-dead-letter-routing-key"] == main.name
        assert dead.name.endswith(".dead")


def test_examples_exist_only_for_known_events():
    examples = REPO / "contracts/src/concord_contracts/examples"
    assert {p.name.removesuffix(".json") for p in examples.glob("*.json")} == set(EVENTS)


def test_the_event_catalogue_document_is_current():
    assert (REPO / "docs/events.md").read_text() == catalogue.render(), (
        "docs/events.md is stale: python -m concord_contracts.catalogue > docs/events.md"
    )
