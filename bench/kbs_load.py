"""The broker's load test at full size (issue 13): 64 clients, 10,000 handshakes (auth, attest, resource) against a
real `kbs serve`, bounded in time; it passes with 0 errors, 0 leaked sessions (every session a finished handshake
made ends attested) and the session table swept back to its size before the load. tests/integration/
test_throughput.py runs the same checks at 320 handshakes on every test run.

    .venv/bin/python bench/kbs_load.py [--handshakes 10000] [--clients 64] [--seconds 900]
        [--database-url postgresql://...] [--workers 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "attestation-agent")]

import policies  # noqa: E402
from kbs.settings import load as load_settings  # noqa: E402
from tests.integration._kbs_server import KbsServer  # noqa: E402
from tests.integration._load import soak  # noqa: E402

SECRET = os.urandom(32)
SESSION_TTL = 30


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--handshakes", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=900.0, help="the load's time bound")
    parser.add_argument("--database-url")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="veritee-load-"))
    config = {"sessions": {"ttl_seconds": SESSION_TTL}, "rate_limit": {"auth_per_minute": 0, "attest_per_minute": 0}}
    with KbsServer(folder, config=config, database_url=args.database_url, workers=args.workers) as server:
        server.admin.put_resource("default/key/1", SECRET)
        server.admin.put_reference_value("sample_svn", ["1"])
        server.admin.set_resource_policy(policies.load("demo_resource_allow_sample.rego"))
        report = soak(
            server.url,
            load_settings(server.config_file).database.url,
            clients=args.clients,
            handshakes=args.handshakes,
            seconds=args.seconds,
            sweep_within=3 * SESSION_TTL,
            secret=SECRET,
        )
    result = report.result
    verdict = {
        "clients": args.clients,
        "handshakes": result.ops,
        "errors": sum(result.errors.values()),
        "error_kinds": dict(result.errors),
        "ops": round(result.ops_per_second, 1),
        "p50_ms": round(result.quantile(0.5) * 1e3, 1),
        "p99_ms": round(result.quantile(0.99) * 1e3, 1),
        "sessions_before": report.start_sessions,
        "sessions_after_load": dict(report.after_load),
        "leaked_sessions": report.leaked,
        "sessions_after_sweep": report.after_sweep,
        "sweep_seconds": round(report.sweep_seconds, 1),
        "load_average": round(os.getloadavg()[0], 1),
    }
    passed = (
        result.ops == args.handshakes
        and not result.errors
        and report.leaked == 0
        and report.after_sweep == report.start_sessions
    )
    verdict["passed"] = passed
    print(json.dumps(verdict) if args.json else "\n".join(f"{k}: {v}" for k, v in verdict.items()))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
