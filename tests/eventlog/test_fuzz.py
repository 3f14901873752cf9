"""Hypothesis fuzzing: random bytes and mutations/truncations of the real logs raise only FormatError.

Whatever parses must also replay and serialise without error.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import VECTORS
from verifier.errors import FormatError
from verifier.eventlog import _parse as parse_module
from verifier.eventlog import parse

from ._build import SHA1, SHA256, measured, tcg2_log

REAL = {
    "rhel8": ((VECTORS / "tpm/go-tpm-tools/rhel8-uefi.bin").read_bytes(), "tcg2"),
    # Only the records and a little padding: the mutations land where the parser reads.
    "ccel_ovmf": ((VECTORS / "tdx/trustee/CCEL_data_ovmf").read_bytes()[:4096], "ccel"),
    "ccel": ((VECTORS / "tdx/trustee/CCEL_data").read_bytes()[:12288], "ccel"),
}
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _parse_all_the_way(data: bytes, kind: str) -> None:
    try:
        log = parse(data, kind)  # type: ignore[arg-type]
    except FormatError:
        return
    log.replay()
    json.dumps(log.to_json())


@FUZZ
@given(st.binary(max_size=4096), st.sampled_from(["tcg2", "ccel"]))
def test_random_bytes(data: bytes, kind: str) -> None:
    _parse_all_the_way(data, kind)


@FUZZ
@given(st.binary(max_size=512), st.sampled_from(["tcg2", "ccel"]))
def test_random_bytes_after_a_valid_header(tail: bytes, kind: str) -> None:
    _parse_all_the_way(tcg2_log(measured(0, 4, bytes(4), [SHA1, SHA256])) + tail, kind)


@FUZZ
@given(st.sampled_from(sorted(REAL)), st.data())
def test_single_byte_mutation_of_real_logs(name: str, data: st.DataObject) -> None:
    raw, kind = REAL[name]
    position = data.draw(st.integers(0, len(raw) - 1), label="position")
    value = data.draw(st.integers(0, 255), label="value")
    mutated = raw[:position] + bytes([value]) + raw[position + 1 :]
    _parse_all_the_way(mutated, kind)


@FUZZ
@given(st.sampled_from(sorted(REAL)), st.data())
def test_truncation_of_real_logs(name: str, data: st.DataObject) -> None:
    raw, kind = REAL[name]
    end = data.draw(st.integers(0, len(raw)), label="end")
    _parse_all_the_way(raw[:end], kind)


@FUZZ
@given(st.sampled_from(sorted(REAL)), st.data())
def test_u32_field_overwrite_of_real_logs(name: str, data: st.DataObject) -> None:
    # Sizes and counts are u32: overwrite an aligned-or-not 4-byte window with an extreme value.
    raw, kind = REAL[name]
    position = data.draw(st.integers(0, len(raw) - 4), label="position")
    value = data.draw(st.sampled_from([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, len(raw)]), label="value")
    mutated = raw[:position] + value.to_bytes(4, "little") + raw[position + 4 :]
    _parse_all_the_way(mutated, kind)


def test_real_prefixes_parse() -> None:
    for raw, kind in REAL.values():
        assert parse(raw, kind).events  # type: ignore[arg-type]


@FUZZ
@given(st.binary(max_size=300), st.integers(0, 70_000), st.sampled_from([0x00, 0xFF]))
def test_padding_scan_matches_rstrip(body: bytes, run: int, pad: int) -> None:
    data = body + bytes([pad]) * run
    assert parse_module._trailing_run_start(data, pad) == len(data.rstrip(bytes([pad])))
