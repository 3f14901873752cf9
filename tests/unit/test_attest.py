"""`verifier.attest`, the one call from evidence to an appraisal, and the typed EAR of `verify_token`."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

import policies
import verifier
from verifier import Appraisal, Binding, Options, Reason, Status, VerifierError
from verifier.ear import Ear, Signer, TokenError, claims_digest, ear_claims, sign, verify_token
from verifier.errors import Error, PolicyError
from verifier.rego import Policy

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
DIGEST = hashlib.sha384(b"runtime").digest()
PUBKEY = {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}
SIGNER = Signer(kid="k1", key=ec.generate_private_key(ec.SECP256R1()))


def sample(report_data: bytes) -> bytes:
    return json.dumps({"svn": "1", "report_data": base64.b64encode(report_data).decode()}).encode()


def attest(evidence: bytes, **binding: object) -> Appraisal:
    return verifier.attest(
        "sample",
        evidence,
        binding=Binding(runtime_digest=DIGEST, runtime_data={"nonce": "n", "tee-pubkey": PUBKEY}, **binding),  # type: ignore[arg-type]
        options=Options(at=NOW),
        policy=Policy.compile(policies.load("sample.rego")),
        policy_id="default_sample",
        reference_values={"sample_svn": ["1"]},
    )


def test_attest_binds_verifies_and_appraises() -> None:
    appraisal = attest(sample(DIGEST), init_data_claims={"k": "v"})
    assert appraisal.tee == "sample"
    assert appraisal.status is Status.AFFIRMING
    assert appraisal.policy_id == "default_sample"
    assert appraisal.claims == {"svn": "1", "report_data": DIGEST.hex()}
    assert appraisal.annotated_evidence["runtime_data_claims"] == {"nonce": "n", "tee-pubkey": PUBKEY}
    assert appraisal.annotated_evidence["init_data_claims"] == {"k": "v"}
    assert appraisal.vector["executables"] > 0


def test_attest_applies_the_tee_binding_rule() -> None:
    """The expected report data comes from the TEE's declared rule, not from the caller."""
    with pytest.raises(VerifierError) as info:
        attest(sample(DIGEST[:32]))
    assert info.value.reason is Reason.REPORT_DATA_MISMATCH


def test_attest_of_an_unknown_tee_is_unsupported_format() -> None:
    with pytest.raises(VerifierError) as info:
        verifier.attest(
            "ternary",
            b"{}",
            binding=Binding(runtime_digest=DIGEST),
            options=Options(at=NOW),
            policy=Policy.compile(policies.load("sample.rego")),
            policy_id="p",
            reference_values={},
        )
    assert info.value.reason is Reason.UNSUPPORTED_FORMAT


def test_ear_round_trip_is_typed() -> None:
    appraisal = attest(sample(DIGEST))
    claims = ear_claims(appraisal, issuer="veritee-test", verifier_id={"developer": "veritee"}, now=NOW, ttl_seconds=60)
    ear = verify_token(sign(SIGNER, claims), {"k1": SIGNER.key.public_key()}, now=NOW, issuer="veritee-test")
    assert isinstance(ear, Ear)
    assert (ear.issuer, ear.expires_at - ear.issued_at) == ("veritee-test", 60)
    assert ear.statuses == {"cpu0": Status.AFFIRMING}
    assert ear.submod.policy_id == "default_sample"
    assert ear.submod.tee == "sample"
    assert ear.submod.claims["svn"] == "1"
    assert ear.submod.runtime_data["tee-pubkey"] == PUBKEY
    assert dict(ear) == claims  # as a mapping: the claims exactly as signed (the resource policy's input)
    assert claims_digest(ear) == claims_digest(claims)


@pytest.mark.parametrize(
    "submods",
    [
        {"cpu0": "affirming"},
        {"cpu0": {"ear.status": "great", "ear.trustworthiness-vector": {}, "ear.appraisal-policy-id": "p"}},
        {"cpu0": {"ear.status": "affirming", "ear.trustworthiness-vector": {}, "ear.appraisal-policy-id": "p"}},
    ],
    ids=["not-an-object", "unknown-status", "no-annotated-evidence"],
)
def test_a_signed_token_that_is_not_an_ear_appraisal_is_refused(submods: dict[str, object]) -> None:
    payload = {
        "eat_profile": "tag:github.com,2023:veraison/ear",
        "iat": 1,
        "exp": 2**40,
        "iss": "i",
        "submods": submods,
    }
    token = jwt.encode(payload, SIGNER.key, algorithm="ES256", headers={"kid": "k1"})
    with pytest.raises(TokenError):
        verify_token(token, {"k1": SIGNER.key.public_key()}, now=NOW)


def test_policy_and_token_errors_are_in_the_one_tree() -> None:
    assert issubclass(PolicyError, Error)
    assert issubclass(TokenError, Error)
    assert issubclass(VerifierError, Error)
    from verifier.rego import PolicyError as FromRego

    assert FromRego is PolicyError
