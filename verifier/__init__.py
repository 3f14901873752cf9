"""Veritee's verifier: evidence parsing and verification down to vendor roots, Rego appraisal, EAR tokens.

A pure library: no web framework, no ORM, no clock and no network inside checks.

>>> from datetime import UTC, datetime
>>> import verifier
>>> r = verifier.verify("sample", b'{"svn": "1", "report_data": "AAE="}', verifier.Options(at=datetime.now(UTC)))
>>> r.claims["report_data"]
'0001'
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Mapping
from typing import Protocol, cast

from .errors import FormatError, Reason, VerificationError, VerifierError
from .options import Options
from .result import Verified

__all__ = [
    "TEES",
    "FormatError",
    "Options",
    "Reason",
    "VerificationError",
    "Verified",
    "VerifierError",
    "verify",
]

# TEE name -> module implementing `verify(evidence, options) -> Verified`.
TEES: dict[str, str] = {
    "sample": "verifier.sample",
    "tpm": "verifier.tpm",
    "snp": "verifier.snp",
    "tdx": "verifier.tdx",
    "az-snp-vtpm": "verifier.az_snp_vtpm",
    "az-tdx-vtpm": "verifier.az_tdx_vtpm",
}

MAX_EVIDENCE_BYTES = 2 * 1024 * 1024


class _TeeModule(Protocol):
    def verify(self, evidence: Mapping[str, object] | bytes, options: Options) -> Verified: ...


# TEE name -> its module once imported (one dict lookup per verification instead of a call and two lookups).
_LOADED: dict[str, _TeeModule] = {}


def _module(tee: str) -> _TeeModule:
    name = TEES.get(tee)
    if name is None:
        raise FormatError(f"tee is {tee!r}, expected one of {sorted(TEES)}", Reason.UNSUPPORTED_FORMAT)
    loaded = sys.modules.get(name)  # imported already: skip import_module's locking and lookups
    if loaded is not None:
        return cast(_TeeModule, loaded)
    try:
        return cast(_TeeModule, importlib.import_module(name))
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        raise FormatError(f"tee {tee!r} is not available in this build", Reason.UNSUPPORTED_FORMAT) from exc


def verify(tee: str, evidence: Mapping[str, object] | bytes, options: Options) -> Verified:
    """Verify one piece of evidence: a parsed evidence JSON object, or its bytes (JSON, or a raw TDX quote or
    SNP report). Raises VerifierError with a reason code on any failure."""
    module = _LOADED.get(tee)
    if module is None:
        module = _LOADED[tee] = _module(tee)
    if isinstance(evidence, bytes | bytearray):
        if len(evidence) > MAX_EVIDENCE_BYTES:
            raise FormatError(f"evidence is {len(evidence)} bytes, at most {MAX_EVIDENCE_BYTES} accepted")
        evidence = bytes(evidence)
        # JSON may start with whitespace (trustee's Azure vectors start with a newline); a raw TDX quote or SNP
        # report starts with its version (2 to 5), neither whitespace nor "{".
        if evidence[:1] == b"{" or evidence.lstrip()[:1] == b"{":
            try:
                document = json.loads(evidence)
            except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the parser goes
                raise FormatError(f"evidence starts like JSON but does not parse ({exc})") from exc
            if not isinstance(document, dict):
                raise FormatError("evidence JSON is not an object")
            evidence = document
    return module.verify(evidence, options)
