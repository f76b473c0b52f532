"""From anything that went wrong to one HTTP status and one JSON error body, never a 500
for bad input and never the text of an exception."""

import json

import pytest
from marshmallow import ValidationError
from nameko.exceptions import MethodNotFound, RemoteError, UnknownService
from werkzeug.exceptions import MethodNotAllowed, NotFound, RequestEntityTooLarge
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from concord_contracts.cases import ConflictCode
from concord_contracts.rpc import ReferralSubmissionSchema
from concord_kit import errors as kit
from gateway import api, errors, i18n, web
from gateway.errors import GatewayError, problem_for

pytestmark = pytest.mark.unit

SECRET = "Talo Menri, born 2014-02-03"  # what an exception's text might carry


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (kit.BadInput({"child": {"given_name": ["Missing."]}}), 422, "invalid_input"),
        (kit.NotFound(SECRET), 404, "not_found"),
        (kit.Forbidden(SECRET), 403, "forbidden"),
        (kit.Unauthenticated(SECRET), 401, "unauthenticated"),
        (kit.Conflict(SECRET), 409, "conflict"),
        (kit.Conflict("stale_version", SECRET), 409, "stale_version"),
        (kit.Conflict("four_eyes", SECRET), 409, "four_eyes"),
        (kit.Conflict("wrong_state", SECRET), 409, "wrong_state"),
        (kit.Conflict("already_with_agency", SECRET), 409, "already_with_agency"),
        (kit.Conflict("agency_working", SECRET), 409, "agency_working"),
        (kit.Conflict("link_to_primary", SECRET), 409, "link_to_primary"),
        (kit.Conflict(SECRET, "wrong_state"), 409, "conflict"),  # only the first argument
        (errors.too_many_attempts(30), 429, "too_many_attempts"),
        (kit.ServiceUnavailable(SECRET), 503, "service_unavailable"),
        (UnknownService("referral"), 503, "service_unavailable"),
        (RemoteError("ContainerBeingKilled", SECRET), 503, "service_unavailable"),
        (RemoteError("IntegrityError", SECRET), 502, "bad_gateway"),
        (MethodNotFound("pipeline_row"), 502, "bad_gateway"),
        (NotFound(), 404, "not_found"),
        (MethodNotAllowed(["POST"]), 405, "method_not_allowed"),
        (RequestEntityTooLarge(), 413, "payload_too_large"),
        (errors.invalid_json(), 400, "invalid_json"),
        (errors.invalid_credentials(), 401, "invalid_credentials"),
        (errors.payload_too_large(), 413, "payload_too_large"),
        (ValidationError({"username": ["Missing."]}), 422, "invalid_input"),
        (KeyError(SECRET), 500, "internal_error"),
        (RuntimeError(SECRET), 500, "internal_error"),
    ],
)
def test_each_failure_has_one_status_and_code(exc, status, code):
    problem = problem_for(exc)
    assert (problem.status, problem.code) == (status, code)
    if isinstance(exc, kit.ConcordError):
        assert problem.status == exc.http_status
    body = json.dumps(errors.error_body(problem, i18n.TRANSLATIONS["en"]))
    assert "Talo" not in body and "2014" not in body


@pytest.mark.parametrize("code", list(ConflictCode))
def test_every_conflict_code_is_answered_as_itself_in_every_language(code):
    problem = problem_for(kit.Conflict(code.value, SECRET))
    assert (problem.status, problem.code) == (409, code.value)
    english = errors.error_body(problem, i18n.TRANSLATIONS["en"])["error"]["message"]
    for language in ("fr", "es"):
        said = errors.error_body(problem, i18n.TRANSLATIONS[language])["error"]["message"]
        assert said and said != english, (language, code)


def test_the_hub_refusals_each_say_something_of_their_own():
    hub = (
        ConflictCode.already_with_agency,
        ConflictCode.agency_working,
        ConflictCode.link_to_primary,
        ConflictCode.wrong_state,
    )
    messages = {problem_for(kit.Conflict(code.value)).message for code in hub}
    assert len(messages) == len(hub)


def test_field_errors_are_named_in_the_body():
    exc = kit.BadInput({"categories": {0: ["Must be one of: grooming."]}, "urgency": ["Missing."]})
    body = errors.error_body(problem_for(exc), i18n.TRANSLATIONS["en"])
    assert body["error"]["code"] == "invalid_input"
    assert body["error"]["fields"] == {
        "categories": {"0": ["Must be one of: grooming."]},
        "urgency": ["Missing."],
    }
    json.dumps(body)


def test_the_message_is_in_the_request_language_and_the_code_is_not():
    problem = problem_for(kit.Forbidden("no"))
    fr = errors.error_body(problem, i18n.TRANSLATIONS["fr"])["error"]
    es = errors.error_body(problem, i18n.TRANSLATIONS["es"])["error"]
    assert fr["code"] == es["code"] == "forbidden"
    assert fr["message"] == "Vous n'avez pas l'autorisation d'effectuer cette action."
    assert es["message"] == "No tiene permiso para realizar esta acción."
    assert "fields" not in fr


def test_only_our_own_faults_are_unexpected():
    assert problem_for(kit.Conflict("x")).expected
    assert problem_for(UnknownService("x")).expected
    assert not problem_for(RuntimeError("x")).expected


def post(data: bytes, *, chunked: bool = False) -> Request:
    environ = EnvironBuilder(method="POST", path="/api/v1/referrals", data=data).get_environ()
    if chunked:
        # As the gateway's WSGI app marks a chunked body eventlet has ended for us.
        del environ["CONTENT_LENGTH"]
        environ["wsgi.input_terminated"] = True
    return Request(environ)


def status_of(call):
    with pytest.raises(GatewayError) as raised:
        call()
    return raised.value.problem.status


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_256_kib_is_413(chunked):
    limit = web.MAX_JSON_BYTES
    filler = b"x" * (limit - len(b'{"a":""}'))
    assert web.read_json(post(b'{"a":"' + filler + b'"}', chunked=chunked)) == {
        "a": filler.decode()
    }
    too_big = b'{"a":"' + filler + b'x"}'
    assert status_of(lambda: web.read_json(post(too_big, chunked=chunked))) == 413


@pytest.mark.parametrize(
    "raw", [b"", b"{", b'{"a": NaN}', b'{"a": Infinity}', b"\xff\xfe\x00", b"[" * 100_000]
)
def test_a_body_that_is_not_json_is_400(raw):
    assert status_of(lambda: web.read_json(post(raw))) == 400


def valid_referral():
    return {
        "channel": "helpline",
        "categories": ["grooming"],
        "urgency": "high",
        "child": {"given_name": "Synthetic", "age_years": 13, "sex": "unknown"},
        "reporter": {"kind": "helpline_staff"},
        "summary": "Synthetic test referral.",
        "consent": {"status": "not_sought", "by": "not_applicable", "legal_basis": "child_safety"},
    }


def test_a_valid_body_is_passed_on_as_sent():
    body = valid_referral()
    ex = web.Exchange(post(json.dumps(body).encode()), "c1", "en")
    assert api.validated_body(ex, ReferralSubmissionSchema()) == body


@pytest.mark.parametrize(
    "body",
    [
        [],
        "a string",
        {**valid_referral(), "channel": "fax"},
        {**valid_referral(), "extra": 1},
        {k: v for k, v in valid_referral().items() if k != "child"},
    ],
)
def test_a_body_against_the_contract_is_422_naming_the_fields(body):
    ex = web.Exchange(post(json.dumps(body).encode()), "c1", "en")
    with pytest.raises(GatewayError) as raised:
        api.validated_body(ex, ReferralSubmissionSchema())
    problem = raised.value.problem
    assert problem.status == 422 and problem.fields


def test_a_malformed_coordination_id_is_422():
    assert api.coordination_id("0C6F3F59-44F5-4A0E-8B0E-3C9F8A3D2E11") == (
        "0c6f3f59-44f5-4a0e-8b0e-3c9f8a3d2e11"
    )
    with pytest.raises(GatewayError) as raised:
        api.coordination_id("../../etc")
    assert raised.value.problem.status == 422
    assert raised.value.problem.fields == {"coordination_id": ["Not a valid UUID."]}


def test_a_correlation_id_is_kept_only_when_it_is_plain():
    def correlation(value):
        builder = EnvironBuilder(path="/", headers={"X-Correlation-ID": value})
        return web.exchange_for(Request(builder.get_environ())).correlation_id

    assert correlation("req-42.a:b_c") == "req-42.a:b_c"
    for bad in ("", "x" * 65, "has space", "semi;colon", "caf\u00e9"):
        assert correlation(bad) != bad and len(correlation(bad)) == 36
