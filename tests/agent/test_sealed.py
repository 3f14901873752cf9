"""attestation_agent.sealed on its own: the resources come from a dict that records what was fetched, so each
test can assert that nothing a secret names is fetched before its signature verifies."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from typing import Any

import pytest
from attestation_agent.sealed import SealedSecretError, unseal

from tests.agent._sealing import envelope, seal, signing_key, vault

KID = "kbs:///default/sealed-secret/key-1"
KEY, PUBLIC_JWK = signing_key()
OTHER_KEY, _ = signing_key()
KEK = os.urandom(32)
SECRET = b"database password \x00\xff"


class Kbs:
    def __init__(self) -> None:
        self.resources = {
            KID: PUBLIC_JWK,
            "kbs:///default/secret/db": SECRET,
            "kbs:///default/kek/1": KEK,
        }
        self.fetched: list[str] = []

    def __call__(self, uri: str) -> bytes:
        self.fetched.append(uri)
        return self.resources[uri]


def test_vault_secret() -> None:
    kbs = Kbs()
    assert unseal(seal(vault("kbs:///default/secret/db"), KEY, KID), kbs) == SECRET
    assert kbs.fetched == [KID, "kbs:///default/secret/db"]


def test_envelope_secret() -> None:
    kbs = Kbs()
    sealed = seal(envelope(SECRET, KEK, "kbs:///default/kek/1"), KEY, KID)
    assert unseal(sealed + "\n", kbs) == SECRET
    assert kbs.fetched == [KID, "kbs:///default/kek/1"]


def _flip(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]


def _part(sealed: str, part: int) -> int:
    """The index of a character in the middle of the JWS part (0 header, 1 payload, 2 signature)."""
    pieces = sealed.removeprefix("sealed.").split(".")
    return len("sealed.") + sum(len(p) + 1 for p in pieces[:part]) + len(pieces[part]) // 2


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _with_header(sealed: str, header: dict[str, Any]) -> str:
    """The same payload and signature under another protected header."""
    _, payload, signature = sealed.removeprefix("sealed.").split(".")
    return f"sealed.{_b64(header)}.{payload}.{signature}"


GOOD = seal(vault("kbs:///default/secret/db"), KEY, KID)

# name -> (sealed secret, message fragment, resources that may be fetched before the refusal)
BAD: dict[str, tuple[Callable[[], str], str, list[str]]] = {
    "not-sealed": (lambda: GOOD.removeprefix("sealed."), "does not start with 'sealed.'", []),
    "unsigned-legacy-form": (
        lambda: f"sealed.fakejwsheader.{_b64(vault('kbs:///default/secret/db'))}.fakesignature",
        "'fakejwsheader' form is refused",
        [],
    ),
    "two-parts": (lambda: "sealed.abc.def", "2 dot-separated parts", []),
    "header-not-base64": (lambda: "sealed.a*b.c.d", "header is not base64url JSON", []),
    "header-not-object": (lambda: f"sealed.{_b64([1])}.e30.AA", "not a JSON object", []),  # type: ignore[arg-type]
    "alg-hs256": (lambda: _with_header(GOOD, {"alg": "HS256", "kid": KID}), "expected ES256", []),
    "alg-none": (lambda: f"sealed.{_b64({'alg': 'none', 'kid': KID})}.{_b64(vault('x'))}.", "expected ES256", []),
    "kid-local-path": (lambda: seal(vault("kbs:///default/secret/db"), KEY, "test-key"), "kbs:/// URI", []),
    "crit-header": (lambda: _with_header(GOOD, {"alg": "ES256", "kid": KID, "crit": ["exp"], "exp": 1}), "crit", []),
    "wrong-signing-key": (lambda: seal(vault("kbs:///default/secret/db"), OTHER_KEY, KID), "does not verify", [KID]),
    "tampered-header": (lambda: _with_header(GOOD, {"alg": "ES256", "kid": KID, "x": 1}), "does not verify", [KID]),
    "tampered-payload": (lambda: _flip(GOOD, _part(GOOD, 1)), "", [KID]),
    "tampered-signature": (lambda: _flip(GOOD, _part(GOOD, 2)), "does not verify", [KID]),
    "signature-stripped": (lambda: GOOD.rsplit(".", 1)[0] + ".", "does not verify", [KID]),
    "unknown-type": (lambda: seal({**vault("kbs:///d/s/db"), "type": "plain"}, KEY, KID), "type is 'plain'", [KID]),
    "old-version": (lambda: seal({**vault("kbs:///d/s/db"), "version": "0.0.1"}, KEY, KID), "version", [KID]),
    "other-provider": (lambda: seal({**vault("x"), "provider": "aliyun"}, KEY, KID), "only provider kbs", [KID]),
    "vault-name-not-kbs": (lambda: seal(vault("/etc/shadow"), KEY, KID), "expected a kbs:/// URI", [KID]),
    "payload-not-object": (
        lambda: "sealed." + __import__("joserfc").jws.serialize_compact({"alg": "ES256", "kid": KID}, b"[1]", KEY),
        "not a JSON object",
        [KID],
    ),
    "envelope-wrong-kek": (
        lambda: seal(envelope(SECRET, os.urandom(32), "kbs:///default/kek/1"), KEY, KID),
        "authentication failed",
        [KID, "kbs:///default/kek/1"],
    ),
    "envelope-wrap-type": (
        lambda: seal({**envelope(SECRET, KEK, "kbs:///default/kek/1"), "wrap_type": "A256CTR"}, KEY, KID),
        "expected A256GCM",
        [KID],
    ),
    "envelope-bad-base64": (
        lambda: seal({**envelope(SECRET, KEK, "kbs:///default/kek/1"), "encrypted_data": "!!"}, KEY, KID),
        "encrypted_data is not standard base64",
        [KID],
    ),
    "envelope-missing-iv": (
        lambda: seal({**envelope(SECRET, KEK, "kbs:///default/kek/1"), "annotations": {}}, KEY, KID),
        "field iv is None",
        [KID],
    ),
    "too-long": (lambda: "sealed." + "a" * 70000, "at most 65536", []),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_sealed_secret_is_refused_before_fetching_what_it_names(case: str) -> None:
    make, message, may_fetch = BAD[case]
    kbs = Kbs()
    with pytest.raises(SealedSecretError, match=None) as raised:
        unseal(make(), kbs)
    assert message in str(raised.value)
    assert kbs.fetched == may_fetch


def test_verification_key_must_be_a_p256_jwk() -> None:
    for stored in (b"not json", json.dumps({"kty": "RSA", "n": "x", "e": "AQAB"}).encode(), b"{}"):
        kbs = Kbs()
        kbs.resources[KID] = stored
        with pytest.raises(SealedSecretError, match="not an EC P-256 JWK"):
            unseal(GOOD, kbs)
        assert kbs.fetched == [KID]
