"""The Veritee side of the differential suite: the oracle venv, a worker process speaking JSON lines, and the
tallies printed at the end of the run.

The oracles (Intel's QVL, Phala's dcap-qvl, keylime, OPA) live in their own venv made by scripts/setup-oracles
(default `.cache/oracles`, or $VERITEE_ORACLES_VENV) because they pin other Python versions or native
libraries; `_worker.py` runs there and never imports Veritee. A missing venv fails the suite: it is never
skipped.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("_worker.py")


def venv_python() -> Path:
    venv = Path(os.environ.get("VERITEE_ORACLES_VENV", ROOT / ".cache" / "oracles"))
    python = venv / "bin" / "python"
    if not python.exists():
        pytest.fail(
            f"the oracle venv is missing ({python}): run scripts/setup-oracles (scripts/test does) to install "
            "Intel's QVL, dcap-qvl, keylime and OPA for the differential suite",
            pytrace=False,
        )
    return python


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class Verdict:
    accept: bool
    status: str
    detail: str = ""
    value: Any = None

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Verdict:
        return cls(bool(raw["accept"]), str(raw["status"]), str(raw.get("detail", "")), raw.get("value"))


class Worker:
    """One worker process; `run` sends cases and reads verdicts, restarting after a native crash of an oracle."""

    def __init__(self) -> None:
        self.python = venv_python()
        self.crashes: list[dict[str, Any]] = []

    def run(self, cases: Sequence[dict[str, Any]], timeout: float = 600) -> list[Verdict]:
        verdicts: list[Verdict] = []
        while len(verdicts) < len(cases):
            todo = cases[len(verdicts) :]
            proc = subprocess.run(
                [str(self.python), str(WORKER)],
                input="".join(json.dumps(c) + "\n" for c in todo).encode(),
                capture_output=True,
                timeout=timeout,
                check=False,
                env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
            )
            lines = proc.stdout.decode().splitlines()
            verdicts.extend(Verdict.of(json.loads(line)) for line in lines)
            if proc.returncode != 0 and len(verdicts) < len(cases):
                crashed = todo[len(lines)]
                self.crashes.append(crashed)
                detail = proc.stderr.decode(errors="replace")[-400:]
                verdicts.append(Verdict(False, f"oracle crashed (exit {proc.returncode})", detail))
            elif proc.returncode != 0:
                raise RuntimeError(f"oracle worker failed: {proc.stderr.decode(errors='replace')[-2000:]}")
        return verdicts


@dataclass
class Tally:
    """Agreement counts per oracle, printed in the terminal summary (pytest_terminal_summary in conftest)."""

    agree: Counter[str] = field(default_factory=Counter)
    diverge: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    intended: Counter[str] = field(default_factory=Counter)

    def record(self, oracle: str, case: str, same: bool, why: str = "", intended: str | None = None) -> None:
        if same:
            self.agree[oracle] += 1
        elif intended is not None:
            self.intended[f"{oracle}: {intended}"] += 1
        else:
            self.diverge[oracle].append(f"{case}: {why}")

    def lines(self) -> Iterable[str]:
        for oracle in sorted(set(self.agree) | set(self.diverge)):
            yield f"{oracle}: {self.agree[oracle]} agree, {len(self.diverge[oracle])} unexplained divergences"
        for what, count in sorted(self.intended.items()):
            yield f"  documented divergence (docs/oracles.md) x{count}: {what}"


TALLY = Tally()
