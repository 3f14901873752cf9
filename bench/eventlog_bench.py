"""Event log parse + replay throughput, as a ratio to the bare work measured in the same run.

The baseline is the irreducible cost: one memcmp-speed pass over the whole input (padding must be seen to
be padding) plus the hash extends of the replay over pre-extracted digests. Run from the repository root:

    /work/venv/bin/python bench/eventlog_bench.py
"""

from __future__ import annotations

import hashlib
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from verifier.eventlog import parse


def _vectors() -> Path:
    return Path(__file__).resolve().parents[1] / "tests" / "vectors"


def _baseline(data: bytes, copy: bytes, steps: list[tuple[str, str, bytes]]) -> None:
    data.startswith(copy)
    registers: dict[tuple[str, str], bytes] = {}
    for bank, register, digest in steps:
        old = registers.get((bank, register), bytes(len(digest)))
        registers[bank, register] = hashlib.new(bank, old + digest).digest()


def _best(run: Callable[[], object], number: int = 200) -> float:
    return min(timeit.repeat(run, number=number, repeat=5)) / number


def main() -> None:
    vectors = _vectors()
    cases = [
        ("CCEL_data (1 MiB, 5 events)", vectors / "tdx/trustee/CCEL_data", "ccel"),
        ("CCEL_data_ovmf (64 KiB, 20 events)", vectors / "tdx/trustee/CCEL_data_ovmf", "ccel"),
        ("rhel8-uefi.bin (34 KB, 82 events, 3 banks)", vectors / "tpm/go-tpm-tools/rhel8-uefi.bin", "tcg2"),
    ]
    print(f"{'log':45} {'parse+replay':>14} {'baseline':>10} {'ratio':>7}")
    for label, path, kind in cases:
        data = path.read_bytes()
        log = parse(data, kind)  # type: ignore[arg-type]
        banks = set(log.replay())
        steps = [
            (bank, event.register, digest)
            for event in log.events
            if event.event_type != 3 and event.register != "mrtd"
            for bank, digest in event.digests.items()
            if bank in banks
        ]
        copy = bytearray(data)
        full = _best(lambda data=data, kind=kind: parse(data, kind).replay())  # type: ignore[misc]
        base = _best(lambda data=data, copy=bytes(copy), steps=steps: _baseline(data, copy, steps))  # type: ignore[misc]
        print(f"{label:45} {full * 1e6:11.1f} us {base * 1e6:7.1f} us {full / base:6.2f}x")


if __name__ == "__main__":
    main()
