"""TPM: Veritee against keylime's `tpm_util.checkquote` and tpm2-tools' `tpm2_checkquote` on the same quotes.

Compared: accept or refuse (AK signature over TPMS_ATTEST, extraData == nonce, pcrDigest over the PCR values).
Veritee's AK trust (certificate chains) is a claim here, not a refusal: neither oracle has the notion. Known
limits of an oracle are named in `intended` with their reason in docs/oracles.md.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..tpm import _quotes
from ..tpm._gotpm import decode
from . import _tpm
from ._harness import TALLY, Verdict, Worker
from ._tpm import TpmQuote

pytestmark = pytest.mark.oracles

AT = datetime(2026, 11, 27, tzinfo=UTC)
MUTATIONS = 25  # per region (TPMS_ATTEST, TPMT_SIGNATURE, PCR values), plus a wrong nonce
SEED = 17
TRUSTEE_NONCE = bytes.fromhex(
    "a04182b506878d4f29b91ee606a71a0d3361ccf1b22db20c98adcaa537bea393"
    "ef0e41a18b3569ab678f1497fbc5c12000000000000000000000000000000000"
)


def _real(vectors: Path) -> list[TpmQuote]:
    trustee = json.loads((vectors / "tpm/trustee/tpm_evidence.json").read_bytes())
    google = decode((vectors / "tpm/go-tpm-tools/gce-cos-85-nonce9009.pb").read_bytes())
    quotes = [TpmQuote("trustee-swtpm", trustee, TRUSTEE_NONCE)]
    for bank, evidence in zip(google.banks, google.evidences, strict=True):
        quotes.append(TpmQuote(f"google-vtpm-{bank}", evidence, bytes.fromhex("9009")))
    return quotes


def _synthetic() -> list[TpmQuote]:
    pcrs = {"sha256": {i: bytes([i]) * 32 for i in (0, 1, 7, 8, 9, 14)}}
    nonce = b"veritee-oracle-nonce-0123456789ab"
    rsa_key = rsa.generate_private_key(65537, 2048)
    p256 = ec.generate_private_key(ec.SECP256R1())
    p384 = ec.generate_private_key(ec.SECP384R1())
    sha384_pcrs = {"sha384": {0: bytes(48), 7: b"\x07" * 48}}
    return [
        TpmQuote("synthetic-rsassa-sha256", _quotes.evidence(rsa_key, pcrs, nonce), nonce),
        TpmQuote("synthetic-rsapss-sha256", _quotes.evidence(rsa_key, pcrs, nonce, scheme="rsapss"), nonce),
        TpmQuote("synthetic-ecdsa-p256", _quotes.evidence(p256, pcrs, nonce), nonce),
        TpmQuote("synthetic-ecdsa-p384-sha384", _quotes.evidence(p384, sha384_pcrs, nonce, hash_name="sha384"), nonce),
    ]


def intended(oracle: str, quote: TpmQuote, ours: Verdict, theirs: Verdict) -> str | None:
    """The documented oracle limits (docs/oracles.md, same names), or None."""
    rsapss = quote.signature[:2] == b"\x00\x16"  # TPM_ALG_RSAPSS
    if oracle == "tpm2_checkquote" and ours.accept and not theirs.accept and rsapss:
        return "tpm2-rsapss: tpm2_checkquote 5.4 fails on RSASSA-PSS quotes (tpm2-tools issue 3283)"
    if oracle == "keylime" and ours.accept and not theirs.accept:
        if "Unsupported quote signature algorithm" in theirs.detail:
            return "keylime-rsapss: keylime's checkquote takes RSASSA and ECDSA only"
        if set(quote.banks()) != {quote.hash}:
            return "keylime-bank: keylime hashes the PCR bank named by the signature's hash"
    return None


def compare(worker: Worker, quotes: list[TpmQuote]) -> list[str]:
    theirs_keylime = worker.run([_tpm.keylime_case(q) for q in quotes])
    problems = []
    for quote, keylime in zip(quotes, theirs_keylime, strict=True):
        ours = _tpm.veritee(quote, AT)
        for oracle, theirs in (("keylime", keylime), ("tpm2_checkquote", _tpm.tpm2_checkquote(quote))):
            same = ours.accept == theirs.accept
            why = f"veritee {ours.accept}/{ours.status} vs {oracle} {theirs.accept}/{theirs.status} {theirs.detail}"
            reason = None if same else intended(oracle, quote, ours, theirs)
            TALLY.record(f"tpm {oracle}", quote.name, same, why, reason)
            if not same and reason is None:
                problems.append(f"{quote.name}: {why}")
    return problems


@pytest.fixture(scope="module")
def worker() -> Worker:
    return Worker()


def test_real_quotes(worker: Worker, vectors: Path) -> None:
    quotes = _real(vectors)
    assert [_tpm.veritee(q, AT).accept for q in quotes] == [True] * 4
    assert compare(worker, quotes) == []


def test_synthetic_quotes(worker: Worker) -> None:
    assert compare(worker, _synthetic()) == []


@pytest.mark.parametrize("which", ["trustee-swtpm", "google-vtpm-sha256"])
def test_real_quote_mutations(worker: Worker, vectors: Path, which: str) -> None:
    (quote,) = [q for q in _real(vectors) if q.name == which]
    assert compare(worker, _tpm.mutations(quote, MUTATIONS, SEED)) == []


def test_synthetic_ecdsa_mutations(worker: Worker) -> None:
    quote = _synthetic()[2]
    assert compare(worker, _tpm.mutations(quote, MUTATIONS, SEED)) == []
