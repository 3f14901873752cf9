"""A small protobuf wire-format reader for go-tpm-tools' `attest.Attestation` (proto/attest.proto, tpm.proto
in google/go-tpm-tools), turning it into Veritee's TPM evidence JSON (docs/evidence.md): one evidence per quote.

    Attestation { bytes ak_pub = 1 (TPMT_PUBLIC); repeated tpm.Quote quotes = 2; bytes event_log = 3;
                  bytes ak_cert = 6; repeated bytes intermediate_certs = 7; ... }
    tpm.Quote   { bytes quote = 1 (TPMS_ATTEST); bytes raw_sig = 2 (TPMT_SIGNATURE); PCRs pcrs = 3 }
    tpm.PCRs    { HashAlgo hash = 1; map<uint32, bytes> pcrs = 2 }
"""

from __future__ import annotations

import base64
from collections import defaultdict
from dataclasses import dataclass

from verifier.tpm import parse_public

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
BANKS = {0x0004: "sha1", 0x000B: "sha256", 0x000C: "sha384", 0x000D: "sha512"}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def fields(data: bytes) -> dict[int, list[int | bytes]]:
    """Field number -> values in order (varints as int, length-delimited as bytes)."""
    out: dict[int, list[int | bytes]] = defaultdict(list)
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = _varint(data, pos)
            out[number].append(value)
        elif wire == LENGTH:
            size, pos = _varint(data, pos)
            out[number].append(data[pos : pos + size])
            pos += size
        elif wire == FIXED64:
            out[number].append(data[pos : pos + 8])
            pos += 8
        elif wire == FIXED32:
            out[number].append(data[pos : pos + 4])
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return out


def _bytes(values: list[int | bytes]) -> bytes:
    (value,) = values
    assert isinstance(value, bytes)
    return value


@dataclass(frozen=True)
class GoTpmAttestation:
    ak_tpmt_public: bytes
    ak_certificate: bytes
    event_log: bytes
    evidences: tuple[dict[str, object], ...]  # one evidence JSON (docs/evidence.md) per quote
    banks: tuple[str, ...]


def decode(data: bytes) -> GoTpmAttestation:
    top = fields(data)
    ak_pub = _bytes(top[1])
    spki = parse_public(ak_pub).spki_der()
    ak_cert = _bytes(top[6]) if 6 in top else b""
    event_log = _bytes(top[3]) if 3 in top else b""
    evidences = []
    banks = []
    for raw_quote in top[2]:
        assert isinstance(raw_quote, bytes)
        quote = fields(raw_quote)
        pcrs_msg = fields(_bytes(quote[3]))
        (hash_id,) = pcrs_msg[1]
        assert isinstance(hash_id, int)
        bank = BANKS[hash_id]
        registers = {}
        for entry in pcrs_msg.get(2, []):
            assert isinstance(entry, bytes)
            kv = fields(entry)
            index = kv[1][0] if 1 in kv else 0
            registers[str(index)] = _bytes(kv[2]).hex()
        banks.append(bank)
        evidence: dict[str, object] = {
            "tpm_quote": {
                "message": base64.b64encode(_bytes(quote[1])).decode(),
                "signature": base64.b64encode(_bytes(quote[2])).decode(),
                "pcrs": {bank: registers},
            },
            "ak_public": base64.b64encode(spki).decode(),
        }
        if ak_cert:
            evidence["ak_certificate"] = base64.b64encode(ak_cert).decode()
        if event_log:
            evidence["event_log"] = base64.b64encode(event_log).decode()
        evidences.append(evidence)
    return GoTpmAttestation(ak_pub, ak_cert, event_log, tuple(evidences), tuple(banks))
