"""The OpenAPI document: valid OpenAPI 3.0, every API route in it, built from the very
schemas the gateway and the services validate with."""

import importlib.util
import re

import pytest

from concord_contracts import rpc
from concord_contracts.cases import ConflictCode
from concord_contracts.codes import REFERENCE_LISTS
from gateway import errors, openapi, schemas
from gateway.service import GatewayService
from gateway.web import Route

pytestmark = pytest.mark.unit

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
PUBLIC = {
    ("post", "/api/v1/auth/token"),
    ("get", "/api/v1/reference/{name}"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/healthz"),
}


@pytest.fixture(scope="module")
def document():
    return openapi.document()


def json_routes():
    """(method, OpenAPI path) of every JSON entrypoint the service registers."""
    routes = set()
    for attribute in vars(GatewayService).values():
        for entrypoint in getattr(attribute, "nameko_entrypoints", ()):
            if isinstance(entrypoint, Route) and (
                entrypoint.url.startswith("/api/") or entrypoint.url == "/healthz"
            ):
                path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", entrypoint.url)
                for method in entrypoint.method.split(","):
                    routes.add((method.lower(), path))
    return routes


def operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def test_every_route_is_documented_and_nothing_else(document):
    routes = json_routes()
    assert len(routes) >= 8
    assert {(method, path) for method, path, _ in operations(document)} == routes


def test_the_document_is_valid_openapi_3(document):
    if importlib.util.find_spec("openapi_spec_validator"):
        from openapi_spec_validator import validate

        validate(document)
    assert re.match(r"^3\.0\.\d+$", document["openapi"])
    assert document["info"]["title"] and document["info"]["version"]
    assert document["paths"]
    operation_ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(operation_ids) == len(set(operation_ids))
    for method, path, operation in operations(document):
        assert path.startswith("/")
        assert operation["responses"], (method, path)
        for status, response in operation["responses"].items():
            assert re.match(r"^[1-5]\d\d$", status)
            assert "$ref" in response or "description" in response
        # Each {placeholder} is a declared path parameter, and the other way round.
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), (method, path)
        for parameter in operation.get("parameters", []):
            assert parameter["in"] in {"path", "query", "header", "cookie"}
            assert "schema" in parameter
            if parameter["in"] == "path":
                assert parameter["required"] is True


def refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def test_every_reference_resolves(document):
    found = list(refs(document))
    assert found
    for ref in found:
        assert ref.startswith("#/components/")
        node = document
        for part in ref[2:].split("/"):
            assert part in node, ref
            node = node[part]


def test_bearer_tokens_are_the_default_and_public_routes_say_so(document):
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert document["security"] == [{"bearer": []}]
    for method, path, operation in operations(document):
        if (method, path) in PUBLIC:
            assert operation["security"] == [], (method, path)
        else:
            assert "security" not in operation, (method, path)
            assert "401" in operation["responses"], (method, path)


def test_the_contract_schemas_are_the_ones_documented(document):
    components = document["components"]["schemas"]
    for name, schema in {
        "ReferralSubmission": rpc.ReferralSubmissionSchema,
        "SubmissionReceipt": rpc.SubmissionReceiptSchema,
        "IntakeItem": rpc.IntakeItemSchema,
        "PipelineRow": rpc.PipelineRowSchema,
        "CaseOpenedReceipt": rpc.CaseOpenedReceiptSchema,
        "InvestigationOpenedReceipt": rpc.InvestigationOpenedReceiptSchema,
        "TokenRequest": schemas.TokenRequestSchema,
        "TokenResponse": schemas.TokenResponseSchema,
        "Error": schemas.ErrorSchema,
        "ErrorDetail": schemas.ErrorDetailSchema,
    }.items():
        names = {field.data_key or key for key, field in schema().fields.items()}
        assert set(components[name]["properties"]) == names, name
        # Closed schemas: unknown fields are refused, and the document says so.
        assert components[name]["additionalProperties"] is False, name
    channel = components["ReferralSubmission"]["properties"]["channel"]
    assert channel["type"] == "string" and "helpline" in channel["enum"]

    body = document["paths"]["/api/v1/referrals"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ReferralSubmission"
    }


def test_the_reference_lists_are_enumerated(document):
    (parameter,) = [
        p
        for p in document["paths"]["/api/v1/reference/{name}"]["get"]["parameters"]
        if p["in"] == "path"
    ]
    assert set(parameter["schema"]["enum"]) == set(REFERENCE_LISTS)


def test_bad_input_is_documented_where_a_body_or_an_id_is_read(document):
    for method, path, operation in operations(document):
        if "requestBody" in operation:
            assert {"400", "413", "422"} <= set(operation["responses"]), (method, path)
        if "{coordination_id}" in path:
            assert "422" in operation["responses"], (method, path)


def test_every_409_names_the_codes_it_may_answer(document):
    """A client can tell refusals apart: each operation refused by state documents its own
    codes (`error.code`), each one the gateway answers with its message; none documents a
    409 without them."""
    for method, path, operation in operations(document):
        answer = operation["responses"].get("409")
        if answer is None:
            continue
        if "$ref" in answer:
            answer = document["components"]["responses"][answer["$ref"].split("/")[-1]]
        codes = re.findall(r"`(\w+)`: ", answer["description"])
        assert codes and set(codes) <= {code.value for code in ConflictCode}, (method, path)
        example = answer["content"]["application/json"]["schema"]["example"]["error"]
        assert example["code"] == codes[0], (method, path)
        assert example["message"] == errors.CONFLICT_MESSAGES[ConflictCode(codes[0])]


def test_accepting_a_referral_documents_no_409(document):
    """Neither agency's `accept_referral` refuses by state: accepting again answers the same
    record, and a routing declined, withdrawn or never made is a 403 (the hub's refusal to
    hand over the details)."""
    answers = document["paths"]["/api/v1/intake/{coordination_id}/accept"]["post"]["responses"]
    assert "409" not in answers
    assert {"401", "403", "404", "422"} <= set(answers)
