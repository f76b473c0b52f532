"""The gateway's reading of the case routes' query strings and headers: lists repeated or
comma-separated, true/false, numbers, unknown parameters and garbled versions refused by
name (before any service is asked)."""

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from gateway import case_api
from gateway.errors import GatewayError
from gateway.web import exchange_for

pytestmark = pytest.mark.unit


def exchange(query: str = "", headers: dict | None = None):
    environ = EnvironBuilder(
        path="/api/v1/cases", query_string=query, headers=headers
    ).get_environ()
    return exchange_for(Request(environ))


def refused_fields(call) -> dict:
    with pytest.raises(GatewayError) as refused:
        call()
    assert refused.value.problem.status == 422
    return refused.value.problem.fields


def test_list_filters_from_the_query_string():
    query = case_api.list_query(
        exchange("status=new,assessed&status=closed&overdue=true&limit=10&risk_level=high")
    )
    assert query == {
        "status": ["new", "assessed", "closed"],
        "risk_level": ["high"],
        "overdue": True,
        "limit": 10,
    }
    assert case_api.list_query(exchange("")) == {}
    assert case_api.list_query(exchange("state=all&cursor=abc&lang=fr")) == {
        "state": "all",
        "cursor": "abc",
    }


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=ten", "limit"),
        ("limit=500", "limit"),
        ("overdue=yes", "overdue"),
        ("status=lost", "status"),
        ("state=half", "state"),
        ("colour=red", "colour"),
        ("origin=elsewhere", "origin"),
    ],
)
def test_a_bad_filter_is_named(query, field):
    assert field in refused_fields(lambda: case_api.list_query(exchange(query)))


def test_the_version_a_writer_read_comes_as_if_match():
    assert case_api.expected_version(exchange()) is None
    assert case_api.expected_version(exchange(headers={"If-Match": '"12"'})) == 12
    assert case_api.expected_version(exchange(headers={"If-Match": 'W/"3"'})) == 3
    assert case_api.expected_version(exchange(headers={"If-Match": "7"})) == 7
    for garbled in ('"abc"', "*", '"0"', '"-1"', "9" * 20):
        fields = refused_fields(
            lambda g=garbled: case_api.expected_version(exchange(headers={"If-Match": g}))
        )
        assert "If-Match" in fields


def test_identifiers_in_the_path_are_checked_by_name():
    assert case_api.identifier("0b8e3a52-1c44-4f0e-8f7a-2d9b6c1e4a77", "case_id")
    assert "service_id" in refused_fields(lambda: case_api.identifier("x", "service_id"))
