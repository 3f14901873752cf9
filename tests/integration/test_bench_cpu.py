"""bench/kbs_handshake_cpu.py runs and prints its figures: a short run checks their shape, never their values (the
machine's load decides those), so the benchmark cannot rot between the times someone reads it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import cli_env

BENCH = Path(__file__).resolve().parents[2] / "bench" / "kbs_handshake_cpu.py"


def test_cpu_benchmark_prints_both_apps_cpu_per_handshake_their_ratio_and_the_load() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--seconds", "0.2", "--rounds", "2", "--concurrency", "2", "--json"],
        capture_output=True,
        env=cli_env(),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    figures = json.loads(done.stdout)
    assert figures["concurrency"] == 2
    assert figures["rounds"] == 2
    for key in ("kbs_cpu_ms", "bare_cpu_ms", "cpu_ratio"):
        low, high = figures[f"{key}_range"]
        assert 0 < low <= figures[key] <= high
    assert len(figures["load_average"]) == 3
