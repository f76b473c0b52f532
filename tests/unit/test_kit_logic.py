"""Pure logic of the platform kit: back-off, failure reasons, caller identity."""

import pytest

from concord_contracts.codes import Organisation, Role
from concord_contracts.envelope import InvalidEvent
from concord_kit.errors import Conflict, Forbidden, Unauthenticated
from concord_kit.events import backoff_seconds, failure_reason
from concord_kit.identity import CallContext, Caller

pytestmark = pytest.mark.unit


def test_backoff_grows_then_holds_at_the_last_step():
    schedule = (1, 5, 15, 60)
    assert [backoff_seconds(a, schedule) for a in (1, 2, 3, 4, 5, 9)] == [1, 5, 15, 60, 60, 60]


def test_failure_reason_names_the_kind_never_the_values():
    class IntegrityError(Exception):
        pass

    leaked = IntegrityError("duplicate key (given_name)=(Talo Menri)")
    assert failure_reason(leaked) == "IntegrityError"
    assert "Talo" not in failure_reason(leaked)
    assert failure_reason(Conflict("case already closed")) == "Conflict: case already closed"
    invalid = InvalidEvent({"payload": {"status": ["bad"]}, "sequence": ["missing"]})
    assert failure_reason(invalid) == "InvalidEvent: payload(status), sequence"


def test_caller_round_trips_through_context_data():
    caller = Caller("u-7", Role.social_worker, Organisation.social_services)
    data: dict = {}
    CallContext(data).act_as(caller, "corr-1")
    context = CallContext(data)
    assert context.caller == caller
    assert context.correlation_id == "corr-1"


def test_require_refuses_the_anonymous_and_the_wrong_role():
    with pytest.raises(Unauthenticated):
        CallContext({}).require()
    data = Caller("u-1", Role.coordinator, Organisation.coordination_body).as_context()
    with pytest.raises(Forbidden):
        CallContext(data).require([Role.social_worker])
    assert CallContext(data).require([Role.coordinator]).user_id == "u-1"


def test_a_forged_role_is_no_caller():
    assert CallContext({"user_id": "x", "role": "god", "agency": "system"}).caller is None


def test_correlation_id_is_minted_once():
    context = CallContext({})
    assert context.correlation_id == context.correlation_id


def test_the_coordination_id_argument_is_found_for_the_log_lines():
    from types import SimpleNamespace

    from concord_kit.logging import _coordination_id_argument

    class Service:
        def accept(self, coordination_id, reason=None): ...

        def health(self): ...

    def worker(method, *args, **kwargs):
        return SimpleNamespace(
            service=Service(),
            entrypoint=SimpleNamespace(method_name=method),
            args=args,
            kwargs=kwargs,
        )

    assert _coordination_id_argument(worker("accept", "c-1")) == "c-1"
    assert _coordination_id_argument(worker("accept", coordination_id="c-2")) == "c-2"
    assert _coordination_id_argument(worker("health")) is None
    assert _coordination_id_argument(worker("accept", {"not": "an id"})) is None
