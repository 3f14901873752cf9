"""Appraisal (AR4SI tiers) and EAR tokens: issue, verify, and every way a token is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

import policies
from verifier.appraisal import Status, annotated_evidence, appraise, status_of
from verifier.ear import EAR_PROFILE, Signer, TokenError, claims_digest, issue, jwk_of, verify_token
from verifier.rego import Policy, PolicyError

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("vector", "status"),
    [
        ({"executables": 3, "hardware": 2}, Status.AFFIRMING),
        ({"executables": 33, "hardware": 2}, Status.WARNING),
        ({"executables": 3, "hardware": 97}, Status.CONTRAINDICATED),
        ({"executables": 0, "hardware": 0}, Status.NONE),
        ({"executables": 33, "hardware": 97}, Status.CONTRAINDICATED),
    ],
)
def test_status_is_worst_tier(vector: dict[str, int], status: Status) -> None:
    assert status_of(vector) is status


def sample_evidence() -> dict[str, object]:
    return annotated_evidence("sample", {"svn": "1", "report_data": "00"}, b"\x00", {"nonce": "n"}, None, None)


def test_sample_policy_fails_closed_without_reference() -> None:
    appraisal = appraise(Policy.compile(policies.load("sample.rego")), "default_sample", sample_evidence(), {})
    assert appraisal.status is Status.CONTRAINDICATED
    assert appraisal.vector["executables"] == 33


def test_sample_policy_affirms_with_reference() -> None:
    appraisal = appraise(Policy.compile(policies.load("sample.rego")), "p", sample_evidence(), {"sample_svn": ["1"]})
    assert appraisal.status is Status.AFFIRMING
    assert appraisal.vector == {
        "instance-identity": 0,
        "configuration": 2,
        "executables": 3,
        "file-system": 0,
        "hardware": 2,
        "runtime-opaque": 0,
        "storage-opaque": 0,
        "sourced-data": 0,
    }


def test_non_integer_claim_is_a_policy_error() -> None:
    policy = Policy.compile('package policy\nimport rego.v1\ntrust_claims := {"executables": "three"}\n')
    with pytest.raises(PolicyError, match="executables"):
        appraise(policy, "p", sample_evidence(), {})


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer(kid="k1", key=ec.generate_private_key(ec.SECP256R1()))


def token_for(signer: Signer, now: datetime = NOW, ttl: int = 300) -> str:
    appraisal = appraise(Policy.compile(policies.load("sample.rego")), "p", sample_evidence(), {"sample_svn": ["1"]})
    return issue(
        signer,
        appraisal=appraisal,
        annotated_evidence=sample_evidence(),
        issuer="veritee-test",
        verifier_id={"developer": "veritee", "build": "test"},
        now=now,
        ttl_seconds=ttl,
    )


def test_token_round_trip(signer: Signer) -> None:
    claims = verify_token(token_for(signer), {"k1": signer.key.public_key()}, now=NOW, issuer="veritee-test")
    assert claims["eat_profile"] == EAR_PROFILE
    submod = claims["submods"]["cpu0"]
    assert submod["ear.status"] == "affirming"
    assert submod["ear.appraisal-policy-id"] == "p"
    assert submod["ear.veraison.annotated-evidence"]["sample"]["svn"] == "1"
    assert claims["exp"] - claims["iat"] == 300
    assert len(claims_digest(claims)) == 64


def test_expired_token(signer: Signer) -> None:
    token = token_for(signer, ttl=60)
    with pytest.raises(TokenError, match="expired"):
        verify_token(token, {"k1": signer.key.public_key()}, now=NOW + timedelta(seconds=61))


def test_tampered_token(signer: Signer) -> None:
    header, payload, signature = token_for(signer).split(".")
    forged = jwt.encode(
        {"eat_profile": EAR_PROFILE, "submods": {}, "iat": 1, "exp": 2**40, "iss": "veritee-test"},
        "x" * 32,
        algorithm="HS256",
    )
    for bad in (f"{header}.{forged.split('.')[1]}.{signature}", forged, f"{header}.{payload}.{signature[:-4]}AAAA"):
        with pytest.raises(TokenError):
            verify_token(bad, {"k1": signer.key.public_key()}, now=NOW)


def test_unknown_kid(signer: Signer) -> None:
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(TokenError, match="kid"):
        verify_token(token_for(signer), {"k2": other}, now=NOW)
    with pytest.raises(TokenError, match="rejected"):
        verify_token(token_for(signer), {"k1": other}, now=NOW)


def test_jwk_of(signer: Signer) -> None:
    jwk = jwk_of("k1", signer.key.public_key())
    assert jwk["kid"] == "k1"
    assert jwk["alg"] == "ES256"
    assert jwk["crv"] == "P-256"


def test_unknown_kid_is_its_own_error(signer: Signer) -> None:
    from verifier.ear import UnknownKeyError

    with pytest.raises(UnknownKeyError):
        verify_token(token_for(signer), {}, now=NOW)
