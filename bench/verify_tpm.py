"""TPM quote verifications per second on one core: Veritee's verifier against (a) the bare signature checks of the
same quotes with `cryptography` and (b) keylime's `keylime.tpm.tpm_util.checkquote` on the same quotes, all
measured in this run. Targets (Veritee's performance contract): Veritee within 1.5x of (a), at least 2x (b).

Quotes: trustee's software-TPM quote (RSA-2048, 24 SHA-256 PCRs), the Google vTPM SHA-256 quote (RSA-2048, 24
PCRs, with its AK certificate: the chain to Google's root is checked on every call, its signatures cached per
AK), and a P-256 ECDSA quote over 16 PCRs signed at start-up by a key made here. Event logs are left out: (a) and
(b) do no replay. keylime's checkquote hashes the PCRs with the bank of the signing hash, so the Google SHA-1 and
SHA-384 bank quotes, which it cannot check, are not in the set.

    bench/setup-keylime                  # once: /work/bench-venv with keylime from PyPI (never a project dependency)
    .venv/bin/python bench/verify_tpm.py [--seconds 2] [--keylime-python /work/bench-venv/bin/python]
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "attestation-agent")]

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature  # noqa: E402

import verifier  # noqa: E402
from tests.tpm import _quotes  # noqa: E402
from tests.tpm._gotpm import decode  # noqa: E402
from verifier.tpm import parse_attest, parse_signature  # noqa: E402

VECTORS = ROOT / "tests" / "vectors" / "tpm"
DEFAULT_KEYLIME_PYTHON = os.environ.get("VERITEE_BENCH_VENV", "/work/bench-venv") + "/bin/python"
TPM_ALG_SHA256 = 0x000B


@dataclass(frozen=True)
class Quote:
    name: str
    evidence: dict[str, Any]
    nonce: bytes
    message: bytes
    signature: bytes  # TPMT_SIGNATURE


def load_quotes() -> list[Quote]:
    trustee = json.loads((VECTORS / "trustee/tpm_evidence.json").read_bytes())
    google: dict[str, Any] = dict(decode((VECTORS / "go-tpm-tools/gce-cos-85-nonce9009.pb").read_bytes()).evidences[1])
    google.pop("event_log")
    key = ec.generate_private_key(ec.SECP256R1())
    nonce = hashlib.sha256(b"bench").digest()
    synthetic = _quotes.evidence(key, {"sha256": {i: hashlib.sha256(bytes([i])).digest() for i in range(16)}}, nonce)
    quotes = []
    for name, evidence in (("trustee-rsa2048", trustee), ("google-rsa2048+cert", google), ("p256-ecdsa", synthetic)):
        message = base64.b64decode(evidence["tpm_quote"]["message"])
        quotes.append(
            Quote(
                name=name,
                evidence=evidence,
                nonce=parse_attest(message).extra_data,
                message=message,
                signature=base64.b64decode(evidence["tpm_quote"]["signature"]),
            )
        )
    return quotes


def rate(fn: Callable[[], None], seconds: float, per_call: int) -> float:
    """Verifications per second of fn (which does per_call verifications), best of three timed runs."""
    fn()
    best = 0.0
    for _ in range(3):
        calls = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / 3:
            fn()
            calls += 1
        best = max(best, calls * per_call / elapsed)
    return best


def veritee(quotes: list[Quote]) -> Callable[[], None]:
    at = datetime.now(UTC)
    jobs = [(q.evidence, verifier.Options(at=at, report_data=q.nonce)) for q in quotes]

    def run() -> None:
        for evidence, options in jobs:
            verifier.verify("tpm", evidence, options)

    return run


def bare(quotes: list[Quote]) -> Callable[[], None]:
    """Only what must be done: one signature verification per quote with an already-loaded key."""
    checks: list[Callable[[], None]] = []
    for q in quotes:
        key = serialization.load_der_public_key(base64.b64decode(q.evidence["ak_public"]))
        sig = parse_signature(q.signature)
        if sig.scheme == "ecdsa":
            assert isinstance(key, ec.EllipticCurvePublicKey)
            der = encode_dss_signature(int.from_bytes(sig.ecdsa_r, "big"), int.from_bytes(sig.ecdsa_s, "big"))
            checks.append(functools.partial(key.verify, der, q.message, ec.ECDSA(hashes.SHA256())))
        else:
            assert isinstance(key, rsa.RSAPublicKey)
            checks.append(
                functools.partial(key.verify, sig.rsa_signature, q.message, padding.PKCS1v15(), hashes.SHA256())
            )

    def run() -> None:
        for check in checks:
            check()

    return run


def keylime_pcrblob(quote: Quote) -> bytes:
    """The PCR values in tpm2-tools' in-memory (little-endian, padded) format that checkquote parses:
    TPML_PCR_SELECTION (count, 16 padded TPMS_PCR_SELECTION), then TPML_DIGESTs of 8 padded TPM2B_DIGESTs."""
    attest = parse_attest(quote.message)
    (selection,) = attest.pcr_selection
    registers = quote.evidence["tpm_quote"]["pcrs"]
    if isinstance(registers, list):
        values = [registers[i] for i in selection.indices]
    else:
        values = [registers[selection.bank][str(i)] for i in selection.indices]
    bitmap = sum(1 << i for i in selection.indices)
    out = struct.pack("<I", 1)
    out += struct.pack("<HB", TPM_ALG_SHA256, 3) + bitmap.to_bytes(3, "little") + bytes(2)
    out += bytes(8) * 15
    digests = [bytes.fromhex(v) for v in values]
    groups = [digests[i : i + 8] for i in range(0, len(digests), 8)]
    out += struct.pack("<I", len(groups))
    for group in groups:
        out += struct.pack("<I", len(group))
        for slot in range(8):
            value = group[slot] if slot < len(group) else b""
            out += struct.pack("<H", len(value)) + value.ljust(64, b"\0")
    return out


KEYLIME_LOOP = """
import base64, json, os, sys, time
os.sched_setaffinity(0, {0})
from keylime.tpm import tpm_util
jobs = [(base64.b64decode(q["aik"]), bytes.fromhex(q["nonce"]), base64.b64decode(q["sig"]),
         base64.b64decode(q["quote"]), base64.b64decode(q["pcrs"])) for q in json.load(sys.stdin)["quotes"]]
seconds = float(sys.argv[1])
def run():
    for aik, nonce, sig, quote, pcrs in jobs:
        tpm_util.checkquote(aik, nonce, sig, quote, pcrs, "sha256")
run()
best = 0.0
for _ in range(3):
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds / 3:
        run()
        calls += 1
    best = max(best, calls * len(jobs) / elapsed)
print(json.dumps({"rate": best, "version": __import__("importlib.metadata").metadata.version("keylime")}))
"""


def keylime(quotes: list[Quote], python: str, seconds: float) -> tuple[float, str]:
    if not Path(python).exists():
        raise SystemExit(f"keylime's environment is missing ({python}): run bench/setup-keylime first")
    payload = {
        "quotes": [
            {
                "aik": base64.b64encode(
                    serialization.load_der_public_key(base64.b64decode(q.evidence["ak_public"])).public_bytes(
                        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                    )
                ).decode(),
                "nonce": q.nonce.hex(),
                "sig": base64.b64encode(q.signature).decode(),
                "quote": base64.b64encode(q.message).decode(),
                "pcrs": base64.b64encode(keylime_pcrblob(q)).decode(),
            }
            for q in quotes
        ]
    }
    done = subprocess.run(
        [python, "-c", KEYLIME_LOOP, str(seconds)],
        input=json.dumps(payload).encode(),
        capture_output=True,
        check=False,
        env={**os.environ, "KEYLIME_LOGGING_CONFIG": "/dev/null"},
    )
    if done.returncode != 0:
        raise SystemExit(f"keylime checkquote failed:\n{done.stderr.decode()[-2000:]}")
    result = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return float(result["rate"]), str(result["version"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per measurement (best of 3 thirds)")
    parser.add_argument("--keylime-python", default=DEFAULT_KEYLIME_PYTHON)
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    quotes = load_quotes()
    print(f"quotes: {', '.join(q.name for q in quotes)}; one core (CPU 0); best of 3 x {args.seconds / 3:.1f}s")
    ours = rate(veritee(quotes), args.seconds, len(quotes))
    base = rate(bare(quotes), args.seconds, len(quotes))
    theirs, version = keylime(quotes, args.keylime_python, args.seconds)
    print(f"  veritee verifier.verify('tpm', ...)       {ours:10.0f} quotes/s")
    print(f"  (a) bare cryptography signature checks    {base:10.0f} quotes/s")
    print(f"  (b) keylime {version} tpm_util.checkquote {theirs:10.0f} quotes/s")
    cost = base / ours
    speedup = ours / theirs
    print(f"veritee cost vs (a): {cost:.2f}x (target <= 1.5x)  {'OK' if cost <= 1.5 else 'MISSED'}")
    print(f"veritee speed vs (b): {speedup:.2f}x (target >= 2x)   {'OK' if speedup >= 2 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
