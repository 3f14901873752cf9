"""Property tests: random and mutated bytes fed to every TPM parser raise only FormatError."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import VECTORS as ALL_VECTORS
from verifier.errors import FormatError
from verifier.tpm import parse_attest, parse_evidence, parse_public, parse_signature
from verifier.tpm._verify import _ecdsa_der

from ._gotpm import decode

VECTORS = ALL_VECTORS / "tpm"
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# The P-256 base point (SEC 2 §2.4.2), a valid public key.
P256_GX = "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"
P256_GY = "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"


def _seeds() -> dict[str, bytes]:
    trustee = json.loads((VECTORS / "trustee/tpm_evidence.json").read_bytes())
    google = decode((VECTORS / "go-tpm-tools/gce-cos-85-nonce9009.pb").read_bytes())
    ecc_public = bytes.fromhex(
        "0023000b00050072000000100018000b00030010"  # ECC, sha256, restricted sign, ECDSA-SHA256, P-256
        "0020" + P256_GX + "0020" + P256_GY
    )
    return {
        "attest": base64.b64decode(trustee["tpm_quote"]["message"]),
        "signature": base64.b64decode(trustee["tpm_quote"]["signature"]),
        "public": google.ak_tpmt_public,
        "ecc_public": ecc_public,
    }


SEEDS = _seeds()
PARSERS: dict[str, Callable[[bytes], object]] = {
    "attest": parse_attest,
    "signature": parse_signature,
    "public": parse_public,
    "ecc_public": parse_public,
}


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        choice = draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if choice == "flip" and data:
            data[position] ^= draw(st.integers(1, 255))
        elif choice == "cut":
            del data[position : position + draw(st.integers(1, 8))]
        elif choice == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        else:
            data = data[:position]
    return bytes(data)


@pytest.mark.parametrize("name", list(PARSERS))
def test_seed_parses(name: str) -> None:
    PARSERS[name](SEEDS[name])


@pytest.mark.parametrize("name", list(PARSERS))
@FUZZ
@given(data=st.data())
def test_mutated_bytes_raise_only_format_error(name: str, data: st.DataObject) -> None:
    blob = data.draw(mutated(SEEDS[name]))
    with contextlib.suppress(FormatError):
        PARSERS[name](blob)


@pytest.mark.parametrize("name", list(PARSERS))
@FUZZ
@given(blob=st.binary(max_size=512))
def test_random_bytes_raise_only_format_error(name: str, blob: bytes) -> None:
    with contextlib.suppress(FormatError):
        PARSERS[name](blob)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=70),
    lambda children: st.lists(children, max_size=25) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=40,
)


@FUZZ
@given(
    pcrs=JSON,
    message=st.one_of(JSON, st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode())),
    extra=st.dictionaries(st.sampled_from(["ak_certificate", "ek_certificate", "event_log"]), JSON),
)
def test_evidence_json_raises_only_format_error(pcrs: object, message: object, extra: dict[str, object]) -> None:
    document = {
        "tpm_quote": {"message": message, "signature": "AAAA", "pcrs": pcrs},
        "ak_public": "AAAA",
        **extra,
    }
    with contextlib.suppress(FormatError):
        parse_evidence(document)


@FUZZ
@given(r=st.binary(max_size=66), s=st.binary(max_size=66))
def test_ecdsa_der_matches_cryptography(r: bytes, s: bytes) -> None:
    """The hand-made DER Ecdsa-Sig-Value is byte for byte cryptography's encoding of the same integers."""
    assert _ecdsa_der(r, s) == encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
