"""`verifier` console script: verify one piece of evidence, or parse and replay an event log.

Always JSON on stdout; exit 0 on success, 1 on a verification failure, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from . import TEES, Options, verify
from .errors import VerifierError

__all__ = ["main"]


MAX_DOCUMENT_BYTES = 64 * 1024 * 1024


class _UsageError(Exception):
    pass


def _read_documents(paths: list[str]) -> tuple[bytes, ...]:
    """Every file named and every file below a named folder, in sorted order. The CLI is the verifier's edge and
    reads its own files (the broker's reader, kbs.collateral.files, is on the broker's side of a slim install)."""
    out: list[bytes] = []
    for name in paths:
        path = Path(name)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            size = file.stat().st_size
            if size > MAX_DOCUMENT_BYTES:
                raise ValueError(f"{file}: {size} bytes, at most {MAX_DOCUMENT_BYTES}")
            out.append(file.read_bytes())
    return tuple(out)


def _files(paths: list[str]) -> tuple[bytes, ...]:
    try:
        return _read_documents(paths)
    except OSError as exc:
        raise _UsageError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    except ValueError as exc:
        raise _UsageError(str(exc)) from exc


def _read(path: str) -> bytes:
    if Path(path).is_dir():
        raise _UsageError(f"{path} is a folder, expected a file")
    return _files([path])[0]


def _time(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _UsageError(f"--at {value!r} is not an ISO 8601 time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _hex(value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        data = bytes.fromhex(value)
    except ValueError as exc:
        raise _UsageError(f"--report-data is not hex: {exc}") from exc
    if len(data) > 64:
        raise _UsageError(f"--report-data is {len(data)} bytes, at most 64")
    return data


def _cmd_verify(args: argparse.Namespace) -> int:
    options = Options(
        at=_time(args.at),
        report_data=_hex(args.report_data),
        collateral=_files(args.collateral),
        certificates=_files(args.cert),
        allow_expired_collateral=args.allow_expired_collateral,
    )
    evidence = _read(args.evidence)
    try:
        result = verify(args.tee, evidence, options)
    except VerifierError as exc:
        print(json.dumps(exc.to_json()))
        print(f"verification failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result.to_json()))
    return 0


def _cmd_eventlog(args: argparse.Namespace) -> int:
    eventlog = importlib.import_module("verifier.eventlog")  # only this command needs it
    data = _read(args.file)
    try:
        log = eventlog.parse(data, args.kind)
    except VerifierError as exc:
        print(json.dumps(exc.to_json()))
        print(f"event log rejected: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(log.to_json()))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="verifier", description="Verify TEE evidence down to vendor roots.")
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="verify one piece of evidence; JSON claims or error on stdout")
    v.add_argument("--tee", required=True, choices=sorted(TEES))
    v.add_argument("evidence", help="evidence JSON, or a raw TDX quote / SNP report")
    v.add_argument("--report-data", help="expected report data in hex (zero-padded to 64 bytes for TDX/SNP)")
    v.add_argument("--collateral", action="append", default=[], help="collateral file or folder (repeatable)")
    v.add_argument("--cert", action="append", default=[], help="certificate or chain file (repeatable)")
    v.add_argument("--at", help="evaluation time, ISO 8601 (default: now)")
    v.add_argument("--allow-expired-collateral", action="store_true")
    v.set_defaults(func=_cmd_verify)
    e = sub.add_parser("eventlog", help="parse and replay an event log")
    e.add_argument("file")
    e.add_argument("--kind", choices=["ccel", "tcg2"], default="tcg2")
    e.set_defaults(func=_cmd_eventlog)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except _UsageError as exc:
        print(f"verifier: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
