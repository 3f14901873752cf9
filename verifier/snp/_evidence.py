"""The SNP evidence JSON (docs/evidence.md) in its two shapes, or a raw report: the report's bytes and the
certificates the guest sent (structure only; the report itself is parsed by `_abi` after its signature holds).

- guest-components' (what an unmodified CoCo guest and Veritee's agent send): `{"attestation_report": <the sev
  crate's JSON object>, "cert_chain": [{"cert_type", "data"}] | null}`, read by `_sev_serde`;
- Veritee's earlier: `{"attestation_report": "<base64>", "certificates": {"vcek"|"vlek"|"ask"|"asvk"|"ark":
  "<base64 DER>"} | null}`.

The two are not mixed: a sev object with `certificates`, or base64 with `cert_chain`, is malformed.

>>> parse_evidence({"attestation_report": "AAAA", "cert_chain": None})
Traceback (most recent call last):
...
verifier.errors.FormatError: malformed_evidence: SNP evidence: field cert_chain is guest-components' shape, ...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .._common import b64field
from ..errors import FormatError
from . import _sev_serde
from ._abi import check_size

__all__ = ["CERTIFICATE_NAMES", "SnpEvidence", "parse_evidence"]

CERTIFICATE_NAMES = ("vcek", "vlek", "ask", "asvk", "ark")


@dataclass(frozen=True)
class SnpEvidence:
    """The report bytes (size-checked only) and the extended report's certificates by name (vcek, vlek, ask,
    asvk, ark; DER)."""

    report: bytes
    certificates: Mapping[str, bytes]


def parse_evidence(evidence: Mapping[str, object] | bytes) -> SnpEvidence:
    """The evidence JSON in either shape, or the raw 1184-byte report."""
    if isinstance(evidence, bytes | bytearray):
        data = bytes(evidence)
        check_size(data)
        return SnpEvidence(report=data, certificates={})
    if _sev_serde.is_sev_serde(evidence.get("attestation_report")):
        if "certificates" in evidence:
            raise FormatError(
                "SNP evidence: field certificates is Veritee's earlier shape, but attestation_report is the sev "
                "crate's object: send the certificates as cert_chain"
            )
        report = _sev_serde.report_bytes(evidence["attestation_report"])
        return SnpEvidence(report=report, certificates=_sev_serde.certificate_table(evidence.get("cert_chain")))
    if "cert_chain" in evidence:
        raise FormatError(
            "SNP evidence: field cert_chain is guest-components' shape, but attestation_report is not the sev "
            "crate's object: send an object as attestation_report, or base64 with certificates"
        )
    report = b64field(evidence, "attestation_report", "SNP evidence")
    check_size(report)
    raw_certs = evidence.get("certificates")
    certificates: dict[str, bytes] = {}
    if raw_certs is not None:
        if not isinstance(raw_certs, Mapping):
            raise FormatError(
                f"SNP evidence: field certificates is {type(raw_certs).__name__}, expected an object or null"
            )
        for name in raw_certs:
            if name not in CERTIFICATE_NAMES:
                raise FormatError(f"SNP evidence: certificates has key {name!r}, expected some of {CERTIFICATE_NAMES}")
            if raw_certs[name] is not None:
                certificates[name] = b64field(raw_certs, name, "SNP evidence certificates")
    return SnpEvidence(report=report, certificates=certificates)
