"""Trustee's reference-value message (its RVPS `register` message, as `POST /kbs/v0/reference-value` takes it):

    {"version": "0.1.0", "type": "sample", "payload": "<standard base64 of {"name": value, ...}>"}

A value is a list of accepted values or one scalar; Veritee stores each name's accepted values as strings (a scalar
is a one-value list; a number or boolean is stored as its JSON text), which is what `query_reference_value(name)`
then answers. The whole message is checked before anything is stored.

>>> decode_message("0.1.0", "sample", "eyJzdm4iOiBbIjEiXSwgIm1ham9yIjogMX0=")
{'svn': ['1'], 'major': ['1']}
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from ..errors import KbsError

__all__ = ["RVPS_MESSAGE_VERSION", "RVPS_PROVENANCE_TYPES", "decode_message"]

RVPS_MESSAGE_VERSION = "0.1.0"
# trustee's "sample" extractor: the payload is the reference values themselves (no signed provenance to check).
RVPS_PROVENANCE_TYPES = ("sample",)
MAX_NAMES = 1000
MAX_VALUES = 1000
MAX_VALUE_CHARS = 1024
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")


def _text(name: str, value: object) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool | int | float) and value is not None:
        text = json.dumps(value)
    else:
        raise KbsError.invalid_request(
            f"reference value {name}: a value is a JSON {type(value).__name__}, expected a string, number or boolean"
        )
    if len(text) > MAX_VALUE_CHARS:
        raise KbsError.invalid_request(
            f"reference value {name}: a value is {len(text)} characters, at most {MAX_VALUE_CHARS}"
        )
    return text


def decode_message(version: str, kind: str, payload: str) -> dict[str, list[str]]:
    """name -> accepted values of an RVPS message; KbsError 400 naming the first thing that is wrong."""
    if version != RVPS_MESSAGE_VERSION:
        raise KbsError.invalid_request(
            f"reference-value message version is {version!r}, expected {RVPS_MESSAGE_VERSION!r}"
        )
    if kind not in RVPS_PROVENANCE_TYPES:
        raise KbsError.invalid_request(
            f"reference-value message type is {kind!r}, expected one of {list(RVPS_PROVENANCE_TYPES)}"
        )
    try:
        document = json.loads(base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError, RecursionError) as exc:
        raise KbsError.invalid_request(
            "reference-value message payload is not standard base64 of a JSON object"
        ) from exc
    if not isinstance(document, dict) or not document:
        raise KbsError.invalid_request(
            "reference-value message payload is not a non-empty JSON object of name -> value"
        )
    if len(document) > MAX_NAMES:
        raise KbsError.invalid_request(f"reference-value message has {len(document)} names, at most {MAX_NAMES}")
    values: dict[str, list[str]] = {}
    for name, value in document.items():
        if not _NAME.match(name):
            raise KbsError.invalid_request(f"reference value name {name[:64]!r} is not [A-Za-z0-9_.:-]{{1,200}}")
        accepted = value if isinstance(value, list) else [value]
        if not accepted or len(accepted) > MAX_VALUES:
            raise KbsError.invalid_request(f"reference value {name}: {len(accepted)} values, expected 1..{MAX_VALUES}")
        values[name] = [_text(name, v) for v in accepted]
    return values
