"""Field types shared by the schemas: closed codes, bounded text, identifiers."""

from __future__ import annotations

import re
from enum import StrEnum

from marshmallow import ValidationError, fields, validate
from marshmallow.validate import Length as validate_length
from marshmallow.validate import Validator

# Control characters other than tab and newline are refused in any text: they have no
# place in a record and are a classic way to smuggle content past a reviewer or a log.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
CODE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def Code(enum: type[StrEnum], **kwargs) -> fields.Field:  # noqa: N802 - reads as a field type
    """A snake_case code from one enumeration; anything else is refused by name."""
    return fields.Enum(enum, by_value=True, **kwargs)


class Text(fields.String):
    """Free text with a length bound and no control characters (free text never crosses the bus)."""

    def __init__(
        self,
        *,
        max_length: int,
        min_length: int = 1,
        multiline: bool = False,
        validate: Validator | None = None,
        **kw,
    ):
        checks: list[Validator] = [validate_length(min=min_length, max=max_length)]
        if validate is not None:
            checks.append(validate)
        super().__init__(validate=checks, **kw)
        self.multiline = multiline

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if _CONTROL.search(text) or (not self.multiline and ("\n" in text or "\r" in text)):
            raise ValidationError("Contains control characters.")
        return text


class CodeString(fields.String):
    """An open snake_case code (a rule id, a reason) where the set is deployment data."""

    def __init__(self, **kw):
        super().__init__(validate=validate.Regexp(CODE_PATTERN), **kw)


def UtcDateTime(**kwargs) -> fields.Field:  # noqa: N802
    """An ISO 8601 instant with its offset; naive times are refused (every clock here is UTC)."""
    return fields.AwareDateTime(format="iso", default_timezone=None, **kwargs)
