"""The repository stands on its own: a fresh clone needs nothing beside it.

The real test vectors live in tests/vectors/ and every one of them is listed, with its digest, in
tests/vectors/PROVENANCE.md; no tracked file reaches for a copy outside the checkout.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess

import pytest

from tests.conftest import ROOT, VECTORS

PROVENANCE = VECTORS / "PROVENANCE.md"
# Spelled in pieces so that this file does not match itself.
OUTSIDE = (b"../" + b"shared", b"shared/" + b"vectors", b"/work/" + b"shared")
# Section numbers of the product contract, a document that is not in the repository: cite docs/ or the primary
# specification instead.
CONTRACT_SECTION = re.compile(rb"\bSPEC" + rb"(?: section| \xc2\xa7|\s+\d)")
# | `snp/go-sev-guest/attestation.bin` | [repo](url) | `commit` | path | licence | 1184 | `sha256` |
ROW = re.compile(r"^\| `(?P<file>[^`]+)` \|.*\| (?P<size>\d+) \| `(?P<sha256>[0-9a-f]{64})` \|$", re.MULTILINE)
NOT_VECTORS = {"PROVENANCE.md", "LICENSE-Apache-2.0.txt"}


def tracked_files() -> list[str]:
    git = shutil.which("git")
    if git is None:
        pytest.fail("git is needed to list the tracked files")
    listing = subprocess.run(
        [git, "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
    ).stdout.decode()
    return [name for name in listing.split("\0") if name]


def test_no_tracked_file_refers_outside_the_repository() -> None:
    offenders = []
    for name in tracked_files():
        path = ROOT / name
        if path == PROVENANCE or not path.is_file():
            continue
        data = path.read_bytes()
        offenders += [f"{name}: {needle.decode()}" for needle in OUTSIDE if needle in data]
        offenders += [f"{name}: {m.group().decode()}" for m in CONTRACT_SECTION.finditer(data)]
    assert offenders == []


def test_every_vector_is_listed_in_the_provenance_file_with_its_digest() -> None:
    listed = {m["file"]: (int(m["size"]), m["sha256"]) for m in ROW.finditer(PROVENANCE.read_text())}
    present = {
        path.relative_to(VECTORS).as_posix(): path
        for path in VECTORS.rglob("*")
        if path.is_file() and path.name not in NOT_VECTORS
    }
    assert sorted(listed) == sorted(present)
    for name, path in present.items():
        data = path.read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == listed[name], name
