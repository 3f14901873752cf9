"""The 44-event TCG2 log inside go-tpm-tools' GCE attestation replays to the PCRs its three quotes carry.

gce-cos-85-nonce9009.pb is a protobuf `Attestation` (go-tpm-tools proto/attest.proto): field 2 `quotes`
(tpm.Quote: field 3 `pcrs` = tpm.PCRs {1: hash (TPM_ALG_ID), 2: map<uint32, bytes> pcrs}), field 3
`event_log`. EXPECTED.log ("P1 go-tpm-tools GCE COS-85"): the event log (44 events) replay matches quoted
PCRs 0-9 in the SHA-1, SHA-256 and SHA-384 quotes. A tiny wire-format reader is enough for the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from verifier.eventlog import check_replay, parse

GCE = "tpm/go-tpm-tools/gce-cos-85-nonce9009.pb"
BANKS = {0x0004: "sha1", 0x000B: "sha256", 0x000C: "sha384"}
# EXPECTED.log, quotes [0], [1], [2]: PCR00.
PCR0 = {
    "sha1": "c032c3b51dbb6f96b047421512fd4b4dfde496f3",
    "sha256": "0f35c214608d93c7a6e68ae7359b4a8be5a0e99eea9107ece427c4dea4e439cf",
    "sha384": ("46ce251b0b5b3da7917c5eb7a72e6e88f8f830445b149937921b095c1fd628db691963861c1153aba9c7097ff1c747f9"),
}


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        if key & 7 == 0:
            value, i = _varint(data, i)
            yield key >> 3, value
        elif key & 7 == 2:
            size, i = _varint(data, i)
            yield key >> 3, data[i : i + size]
            i += size
        else:
            raise AssertionError(f"unexpected wire type {key & 7}")


def _attestation(vectors: Path) -> tuple[bytes, dict[str, dict[str, bytes]]]:
    event_log = b""
    quoted: dict[str, dict[str, bytes]] = {}
    for number, value in _fields((vectors / GCE).read_bytes()):
        if number == 3 and isinstance(value, bytes):
            event_log = value
        elif number == 2 and isinstance(value, bytes):
            pcrs = next(v for n, v in _fields(value) if n == 3)
            assert isinstance(pcrs, bytes)
            bank = ""
            values: dict[str, bytes] = {}
            for n, v in _fields(pcrs):
                if n == 1:
                    assert isinstance(v, int)
                    bank = BANKS[v]
                else:
                    assert isinstance(v, bytes)
                    entry = dict(_fields(v))
                    values[str(entry.get(1, 0))] = bytes(entry[2])
            quoted[bank] = values
    return event_log, quoted


def test_gce_event_log_replays_to_the_quoted_pcrs(vectors: Path) -> None:
    data, quoted = _attestation(vectors)
    log = parse(data, "tcg2")
    assert len(log.events) == 44
    assert set(quoted) == {"sha1", "sha256", "sha384"}
    assert {bank: values["0"].hex() for bank, values in quoted.items()} == PCR0
    replayed = log.replay()
    for bank, values in replayed.items():
        assert sorted(values, key=int) == [str(i) for i in range(10)]
        assert {pcr: quoted[bank][pcr] for pcr in values} == values
    check_replay(log, quoted)
