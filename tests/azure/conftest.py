"""Azure CVM fixtures: trustee's real evidence (tests/vectors/azure; provenance in tests/vectors/PROVENANCE.md),
of it, and synthetic CVMs signed by test-only roots (make_evidence.py)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

import verifier
from tests.azure.make_evidence import Synthetic, make_snp, make_tdx
from tests.conftest import VECTORS
from verifier import Options, Reason, VerifierError

AZURE = VECTORS / "azure"
TODAY = datetime(2026, 11, 27, tzinfo=UTC)
CHALLENGE = b"challenge"  # the report data of trustee's v0 and v1 vectors
V2_REPORT_DATA = bytes.fromhex(
    "982f5c6e45df0ed3f10b6f60b02f0c8390e281300f3805e2279c16168cd6ae9aa398f647caa2338748cd0fd9f5f819ef"
)
GENOA_REPORT_DATA = bytes.fromhex(
    "0218488bae25d2509232bf676f1a66a30d7372add909109b36016ef136f2938ca05475f8b46094de6b64270ea35d950f"
)
# HCL report offsets (Azure ATTESTATION_HEADER 0x20, hardware report 0x4A0, IGVM_REQUEST_DATA 0x14).
HW_REPORT = 0x20
IGVM_REPORT_TYPE = 0x4C0 + 8
RUNTIME_DATA = 0x4D4


def load(name: str) -> dict[str, object]:
    """A vector's evidence JSON (tee/file, e.g. "az-snp-vtpm/evidence-v1.json")."""
    document: dict[str, object] = json.loads((AZURE / name).read_text())
    return document


def encode(document: dict[str, object]) -> bytes:
    return json.dumps(document).encode()


def hcl_of(document: dict[str, object]) -> bytes:
    return base64.urlsafe_b64decode(str(document["hcl_report"]))


def with_hcl(document: dict[str, object], hcl: bytes) -> dict[str, object]:
    return {**document, "hcl_report": base64.urlsafe_b64encode(hcl).decode()}


def flip_hcl(document: dict[str, object], offset: int, mask: int = 0x01) -> dict[str, object]:
    data = bytearray(hcl_of(document))
    data[offset] ^= mask
    return with_hcl(document, bytes(data))


def flip_quote(document: dict[str, object], field: str, offset: int) -> dict[str, object]:
    quote = dict(document["tpm_quote"])  # type: ignore[call-overload]
    data = bytearray(bytes.fromhex(quote[field]))
    data[offset] ^= 0x01
    quote[field] = data.hex()
    return {**document, "tpm_quote": quote}


def flip_pcr(document: dict[str, object], index: int) -> dict[str, object]:
    """The evidence (version 1 or 2) with one bit of a quoted PCR value flipped (the quote's pcrDigest unchanged)."""
    quote = dict(document["tpm_quote"])  # type: ignore[call-overload]
    pcrs = list(quote["pcrs"])
    pcrs[index] = f"{int(pcrs[index][:2], 16) ^ 0x01:02x}" + pcrs[index][2:]
    return {**document, "tpm_quote": {**quote, "pcrs": pcrs}}


def verify(tee: str, document: dict[str, object] | bytes, **options: object) -> verifier.Verified:
    data = document if isinstance(document, bytes) else encode(document)
    return verifier.verify(tee, data, Options(at=options.pop("at", TODAY), **options))  # type: ignore[arg-type]


def reason_of(tee: str, document: dict[str, object] | bytes, **options: object) -> Reason:
    with pytest.raises(VerifierError) as caught:
        verify(tee, document, **options)
    return caught.value.reason


@pytest.fixture(scope="session")
def snp_cvm() -> Synthetic:
    """A synthetic az-snp-vtpm CVM whose quote binds 48 bytes of report data."""
    return make_snp(bytes(range(48)))


@pytest.fixture(scope="session")
def tdx_cvm() -> Synthetic:
    return make_tdx(bytes(range(48)))


def synthetic_options(cvm: Synthetic) -> dict[str, object]:
    """Options that trust the CVM's test roots (and still the pinned vendor roots)."""
    options: dict[str, object] = {"trust": cvm.trust, "collateral": cvm.collateral}
    if "at" in cvm.extras:
        options["at"] = cvm.extras["at"]
    return options


Mutation = Callable[[dict[str, object]], dict[str, object]]
