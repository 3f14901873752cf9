"""Query and path parameters read as the OpenAPI document types them: an `integer` or a `number` written as JSON
writes one (RFC 8259 section 6), a `boolean` as `true` or `false`.

Pydantic's lax mode would take `+4`, ` 4`, `4_0`, `04`, `1e400` (infinity) or `yes` from the text of a URL, which the
document does not allow and no client of it sends (schemathesis's negative cases found them accepted). These types
check the text first and then let pydantic convert it, so a refusal is a 400 InvalidRequest naming the parameter.

A bounded parameter puts its bounds before the check, `Annotated[int, Field(ge=1, le=MAX_ID), JSON_INTEGER]`: put
after it, they would not reach the integer's schema, and the document would show them as unknown `ge`/`le` keys
instead of `minimum`/`maximum`.

>>> from pydantic import TypeAdapter
>>> TypeAdapter(NumberParam).validate_python("1.5e3")
1500.0
>>> try:
...     TypeAdapter(IntParam).validate_python("+4")
... except ValueError as exc:
...     print(exc.errors()[0]["msg"])  # type: ignore[attr-defined]
Value error, not an integer as JSON writes one
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AllowInfNan, BeforeValidator

__all__ = ["JSON_INTEGER", "JSON_NUMBER", "BoolParam", "IntParam", "NumberParam"]

# RFC 8259 section 6 (numbers): an optional minus, no leading zeros, no plus, no blanks, no digit separators.
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def _integer(value: object) -> object:
    if isinstance(value, str) and not _INTEGER.fullmatch(value):
        raise ValueError("not an integer as JSON writes one")
    return value


def _number(value: object) -> object:
    if isinstance(value, str) and not _NUMBER.fullmatch(value):
        raise ValueError("not a number as JSON writes one")
    return value


def _boolean(value: object) -> object:
    if isinstance(value, str) and value not in ("true", "false"):
        raise ValueError("not true or false")
    return value


JSON_INTEGER = BeforeValidator(_integer)
JSON_NUMBER = BeforeValidator(_number)
IntParam = Annotated[int, JSON_INTEGER]
NumberParam = Annotated[float, AllowInfNan(False), JSON_NUMBER]  # 1e400 is a JSON number, but an infinite one
BoolParam = Annotated[bool, BeforeValidator(_boolean)]
