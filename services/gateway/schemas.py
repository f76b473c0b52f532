"""The gateway's own payloads (the case payloads are in concord_contracts.rpc)."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate


class _Closed(Schema):
    class Meta:
        unknown = RAISE


class TokenRequestSchema(_Closed):
    username = fields.String(required=True, validate=validate.Length(min=1, max=150))
    # The bound keeps argon2 from being handed megabytes to hash.
    password = fields.String(required=True, validate=validate.Length(min=1, max=1024))


class TokenResponseSchema(_Closed):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True, validate=validate.OneOf(["bearer"]))
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds."})


class ErrorDetailSchema(_Closed):
    code = fields.String(required=True, metadata={"description": "Stable, snake_case."})
    message = fields.String(required=True, metadata={"description": "In the request's language."})
    # `fields` in JSON; another name here, where `fields` is the Schema's own attribute.
    field_errors = fields.Dict(
        data_key="fields",
        keys=fields.String(),
        metadata={"description": "Each invalid field with its messages (422 only)."},
    )


class ErrorSchema(_Closed):
    error = fields.Nested(ErrorDetailSchema, required=True)


class ReferenceItemSchema(_Closed):
    code = fields.String(required=True)
    label = fields.String(required=True, metadata={"description": "In the request's language."})


class ServiceHealthSchema(Schema):
    status = fields.String(
        required=True, validate=validate.OneOf(["ok", "degraded", "unavailable"])
    )
    database = fields.String()
    outbox_pending = fields.Integer()


class HealthReportSchema(_Closed):
    status = fields.String(required=True, validate=validate.OneOf(["ok", "degraded"]))
    services = fields.Dict(
        keys=fields.String(), values=fields.Nested(ServiceHealthSchema), required=True
    )
