"""Replays each fuzz target's committed seed corpus and the inputs that once crashed it (tests/fuzz/crashes):
only the target's typed format error may come out. CI runs this; the million-input runs are scripts/fuzz's."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from .targets import TARGETS

HERE = Path(__file__).resolve().parent


def _inputs(kind: str) -> list[tuple[str, str, Path]]:
    return [
        (target, path.name, path)
        for target in TARGETS
        for path in sorted((HERE / kind / target).glob("*"))
        if path.is_file()
    ]


SEEDS = _inputs("corpus")
CRASHES = _inputs("crashes")


def test_every_target_has_seeds() -> None:
    assert {target for target, _, _ in SEEDS} == set(TARGETS)


@pytest.mark.parametrize(("target", "name", "path"), SEEDS, ids=[f"{t}/{n}" for t, n, _ in SEEDS])
def test_seed_parses(target: str, name: str, path: Path) -> None:
    """Seeds are valid inputs: the fuzzer starts from the parsers' accepting paths (the evidence target's seeds
    have no collateral or trust anchors: they must reach a typed refusal, nothing else)."""
    spec = TARGETS[target]
    if spec.seeds_pass:
        spec.run(path.read_bytes())
    else:
        with contextlib.suppress(*spec.allowed):
            spec.run(path.read_bytes())


def test_former_crashes_are_typed_errors() -> None:
    for target, _, path in CRASHES:
        spec = TARGETS[target]
        with contextlib.suppress(*spec.allowed):
            spec.run(path.read_bytes())


def test_crash_regressions_exist() -> None:
    """The inputs that once escaped as untyped exceptions stay in the replay set (docs/oracles.md, Findings)."""
    assert {target for target, _, _ in CRASHES} >= {
        "keyprovider",
        "oci_layout",
        "collateral",
        "evidence",
        "azure_evidence",
    }
