"""A database or a broker that is restarting is a 503 (try again), never a 500: the fault
suite met both while the gateway or a service was mid-request."""

import pytest
from amqp.exceptions import RecoverableConnectionError
from kombu.exceptions import OperationalError as KombuOperationalError
from nameko.exceptions import RemoteError
from sqlalchemy import exc as sa_exc

from gateway import errors

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "failure",
    [
        sa_exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")),
        sa_exc.InterfaceError("SELECT 1", {}, Exception("connection already closed")),
        RemoteError("OperationalError", "server closed the connection"),
        KombuOperationalError("[Errno 111] ECONNREFUSED"),
        RecoverableConnectionError("connection lost"),
        ConnectionResetError(104, "reset"),
    ],
)
def test_a_restarting_database_or_broker_is_503(failure):
    problem = errors.problem_for(failure)
    assert (problem.status, problem.code) == (503, "service_unavailable")


def test_an_undeclared_failure_of_a_service_is_still_502():
    assert errors.problem_for(RemoteError("KeyError", "x")).status == 502
