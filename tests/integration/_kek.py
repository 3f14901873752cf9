"""Helpers of the key-custody tests: `kbs kek` runs, the sealed values read straight from the database, a SoftHSM2
token made in a temporary folder."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from kbs.sealing import kid_of
from kbs.storage import SEALED_COLUMNS, Store
from tests.conftest import run_cli

__all__ = ["SOFTHSM_LIBRARY", "kek_cli", "sealed_by_kid", "sealed_kids", "sealed_values", "softhsm_token"]

SOFTHSM_LIBRARY = Path("/usr/lib/softhsm/libsofthsm2.so")


def kek_cli(*args: str, timeout: float = 300) -> tuple[int, dict[str, Any], str]:
    """`kbs kek ARGS --json`: exit code, the JSON report (empty when none), stderr."""
    done = run_cli("kbs", "kek", *args, "--json", timeout=timeout)
    report: dict[str, Any] = json.loads(done.stdout) if done.stdout.strip() else {}
    return done.returncode, report, done.stderr.decode()


def sealed_values(database_url: str) -> dict[tuple[str, str], bytes]:
    """(table, key) -> sealed value, of every sealed column."""
    store = Store(database_url, threads=1)
    try:
        out: dict[tuple[str, str], bytes] = {}
        for column in SEALED_COLUMNS:
            after = None
            while batch := store.sealed_batch(column, after, 500):
                after = batch[-1][0]
                out.update({(column.name, "/".join(map(str, key))): value for key, value in batch})
        return out
    finally:
        store.engine.dispose()


def sealed_kids(database_url: str) -> dict[tuple[str, str], str]:
    """(table, key) -> the id of the key that sealed the value."""
    return {name: kid_of(value) for name, value in sealed_values(database_url).items()}


def sealed_by_kid(database_url: str) -> Counter[str]:
    return Counter(sealed_kids(database_url).values())


def softhsm_token(folder: Path, label: str = "veritee", pin: str = "1234") -> dict[str, str]:
    """A fresh SoftHSM2 token in `folder`; the environment that points SoftHSM2 at it (SOFTHSM2_CONF)."""
    tokens = folder / "tokens"
    tokens.mkdir(parents=True)
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", "0000" + pin],
        env=env,
        check=True,
        capture_output=True,
    )
    pin_file = folder / "token.pin"
    pin_file.write_text(pin + "\n")
    pin_file.chmod(0o600)
    return {"SOFTHSM2_CONF": str(conf)}
