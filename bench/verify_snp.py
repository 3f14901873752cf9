"""SNP verification throughput with certificates cached, against the bare P-384 checks it must do.

Both loops run over the same real reports (tests/vectors/snp: go-sev-guest, trustee VCEK, trustee VLEK)
in this process. The baseline is only the ECDSA P-384/SHA-384 verification of each report's signature with an
already-loaded public key; the full path is `verifier.verify("snp", ...)` with the VCEK/VLEK given as
certificates, after one warm-up call (so the certificate parsing and the RSA chain checks are cached). A third
loop verifies the same reports as guest-components sends them (the sev crate's JSON with the VEK in cert_chain),
given as the parsed document the broker hands the verifier (the HTTP body's JSON decoding is the web layer's), so
it adds the structure checks and the report's reconstruction from integer arrays.

    python bench/verify_snp.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import verifier  # noqa: E402
from tests.snp._sev_json import cert_entry, sev_json  # noqa: E402
from verifier import Options  # noqa: E402
from verifier.snp._certs import parse_vek  # noqa: E402

SNP = ROOT / "tests" / "vectors" / "snp"
CASES = [
    ("go-sev-guest/attestation.bin", "go-sev-guest/vcek.testcer", datetime(2026, 11, 27, tzinfo=UTC)),
    ("trustee/test-report.bin", "trustee/test-vcek.der", datetime(2026, 11, 27, tzinfo=UTC)),
    ("trustee/test-vlek-report.bin", "trustee/test-vlek.der", datetime(2025, 6, 1, tzinfo=UTC)),
]


def _rate(fn: object, seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()  # type: ignore[operator]
        count += 1
    return count * len(CASES) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per side, split in alternating rounds")
    args = parser.parse_args()
    inputs = []
    coco = []
    for report_name, cert_name, at in CASES:
        report, cert = (SNP / report_name).read_bytes(), (SNP / cert_name).read_bytes()
        key = parse_vek(cert).public_key  # (AMD's serial-0 certificates load without a warning here)
        inputs.append((report, key, Options(at=at, certificates=(cert,))))
        vek_type = "VLEK" if "vlek" in cert_name else "VCEK"
        document = {"attestation_report": sev_json(report), "cert_chain": [cert_entry(vek_type, cert)]}
        coco.append((json.loads(json.dumps(document)), Options(at=at)))

    def bare() -> None:
        for report, key, _ in inputs:
            r = int.from_bytes(report[0x2A0:0x2E8], "little")
            s = int.from_bytes(report[0x2E8:0x330], "little")
            key.verify(encode_dss_signature(r, s), report[:0x2A0], ec.ECDSA(hashes.SHA384()))

    def full() -> None:
        for report, _, options in inputs:
            verifier.verify("snp", report, options)

    def guest_components() -> None:
        for evidence, options in coco:
            verifier.verify("snp", evidence, options)

    full()  # warm the certificate caches
    guest_components()
    # Alternate short rounds and keep each side's best: the machine is shared, so a single long run of one
    # side can land in someone else's busy second.
    rounds = 6
    baseline = 0.0
    verified = 0.0
    sev_json_rate = 0.0
    for _ in range(rounds):
        baseline = max(baseline, _rate(bare, args.seconds / rounds))
        verified = max(verified, _rate(full, args.seconds / rounds))
        sev_json_rate = max(sev_json_rate, _rate(guest_components, args.seconds / rounds))
    print(f"bare P-384 verify:        {baseline:9.0f} reports/s")
    print(f"verifier.verify (cached): {verified:9.0f} reports/s")
    print(f"ratio (bare / full):      {baseline / verified:9.2f}x   (target <= 1.5x)")
    print(f"guest-components JSON:    {sev_json_rate:9.0f} reports/s")
    print(f"ratio (bare / JSON):      {baseline / sev_json_rate:9.2f}x")


if __name__ == "__main__":
    main()
