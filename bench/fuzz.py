"""Coverage-guided fuzzing of Veritee's parsers with atheris (libFuzzer), one target at a time.

    scripts/fuzz TARGET [--runs N] [--time SECONDS] [--report FILE] [libFuzzer flags, e.g. -seed=1]
    scripts/fuzz --list

Targets are tests/fuzz/targets.py: bytes in, only the target's typed format error out. The committed seed corpus
tests/fuzz/corpus/TARGET is read, never written; what the fuzzer learns goes to .cache/fuzz/TARGET. An input
that raises anything else is saved under .cache/fuzz/findings/TARGET (one per exception type and place) and the
run goes on; the progress (inputs run, findings) is kept in .cache/fuzz/TARGET.json (and --report FILE), and
libFuzzer prints its final stats (stat::number_of_executed_units) when it stops. scripts/fuzz runs this in the
oracle venv (scripts/setup-oracles), where atheris is. A
finding becomes a regression test by copying its file into tests/fuzz/crashes/TARGET.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "attestation-agent")]

with atheris.instrument_imports(include=["verifier", "kbs", "guest"]):
    from tests.fuzz.targets import TARGETS


@dataclass
class Progress:
    runs: int = 0
    findings: Counter[str] = field(default_factory=Counter)
    start: float = field(default_factory=time.monotonic)


STATE = Progress()


def _place(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1] if frames else None
    where = f"{Path(last.filename).name}:{last.lineno}" if last else "?"
    return f"{type(exc).__name__}@{where}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="?", choices=sorted(TARGETS))
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--time", type=int, default=0, help="stop after this many seconds (0: no limit)")
    parser.add_argument("--report", type=Path)
    parser.add_argument("--list", action="store_true")
    args, libfuzzer = parser.parse_known_args()
    if args.list or args.target is None:
        for name, target in TARGETS.items():
            print(f"{name:16} {target.about}")
        return
    target = TARGETS[args.target]
    work = ROOT / ".cache" / "fuzz" / args.target
    findings = ROOT / ".cache" / "fuzz" / "findings" / args.target
    work.mkdir(parents=True, exist_ok=True)
    findings.mkdir(parents=True, exist_ok=True)
    seeds = ROOT / "tests" / "fuzz" / "corpus" / args.target

    def report() -> None:
        """The progress so far, as one JSON object in .cache/fuzz/TARGET.json (and --report): libFuzzer ends
        the process with exit(), so this is written as the run goes, every 50,000 inputs."""
        summary = {
            "target": args.target,
            "inputs": STATE.runs,
            "seconds": round(time.monotonic() - STATE.start),
            "findings": dict(STATE.findings),
        }
        (work.parent / f"{args.target}.json").write_text(json.dumps(summary) + "\n")
        if args.report:
            args.report.write_text(json.dumps(summary) + "\n")

    def one(data: bytes) -> None:
        STATE.runs += 1
        if STATE.runs % 50_000 == 0:
            report()
        try:
            target.run(data)
        except target.allowed:
            pass
        except Exception as exc:  # the finding this fuzzer exists for: saved, counted, and the run goes on
            place = _place(exc)
            STATE.findings[place] += 1
            if STATE.findings[place] == 1:
                report()
                name = f"{place.replace('@', '-').replace(':', '-')}-{hashlib.sha256(data).hexdigest()[:12]}"
                (findings / name).write_bytes(data)
                print(f"FINDING {place}: {exc!r:.200}", file=sys.stderr, flush=True)

    flags = [
        sys.argv[0],
        str(work),
        str(seeds),
        f"-runs={args.runs}",
        "-print_final_stats=1",
        f"-max_len={target.max_len}",
    ]
    if args.time:
        flags.append(f"-max_total_time={args.time}")
    STATE.start = time.monotonic()

    atheris.Setup(flags + libfuzzer, one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
