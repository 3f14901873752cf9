"""TPM inputs for the differential suite: one quote in the shapes keylime's checkquote and tpm2_checkquote take,
Veritee's verdict, and seeded mutations of TPMS_ATTEST, TPMT_SIGNATURE and the PCR values."""

from __future__ import annotations

import base64
import copy
import random
import struct
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

import verifier
from verifier import Options, VerifierError

from ._harness import Verdict, b64

HASH_NAMES = {0x0004: "sha1", 0x000B: "sha256", 0x000C: "sha384", 0x000D: "sha512"}
HASH_IDS = {name: alg for alg, name in HASH_NAMES.items()}
TPMU_HA = 64  # tpm2-tools writes every digest in a TPMU_HA-sized slot (SHA-512)


@dataclass(frozen=True)
class TpmQuote:
    """TPM evidence (docs/evidence.md) and the nonce its extraData must equal."""

    name: str
    evidence: Mapping[str, Any]
    nonce: bytes

    @property
    def message(self) -> bytes:
        return base64.b64decode(self.evidence["tpm_quote"]["message"])

    @property
    def signature(self) -> bytes:
        return base64.b64decode(self.evidence["tpm_quote"]["signature"])

    @property
    def hash(self) -> str:
        (alg,) = struct.unpack_from(">H", self.signature, 2) if len(self.signature) >= 4 else (0x000B,)
        return HASH_NAMES.get(alg, "sha256")

    def ak_pem(self) -> bytes:
        key = serialization.load_der_public_key(base64.b64decode(self.evidence["ak_public"]))
        return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def banks(self) -> dict[str, dict[int, bytes]]:
        pcrs = self.evidence["tpm_quote"]["pcrs"]
        if isinstance(pcrs, list):  # trustee's form: the SHA-256 bank, PCR 0..n-1
            return {"sha256": {i: bytes.fromhex(v) for i, v in enumerate(pcrs)}}
        return {bank: {int(i): bytes.fromhex(v) for i, v in regs.items()} for bank, regs in pcrs.items()}

    def pcrblob(self) -> bytes:
        """The PCR values as tpm2-tools writes them (tpm2_quote -o): TPML_PCR_SELECTION in host byte order with
        16 padded TPMS_PCR_SELECTIONs, then TPML_DIGESTs of 8 TPM2B_DIGESTs in TPMU_HA-sized slots."""
        banks = self.banks()
        out = struct.pack("<I", len(banks))
        values: list[bytes] = []
        for bank, regs in banks.items():
            bitmap = sum(1 << i for i in regs)
            out += struct.pack("<HB", HASH_IDS[bank], 3) + bitmap.to_bytes(3, "little") + bytes(2)
            values += [regs[i] for i in sorted(regs)]
        out += bytes(8) * (16 - len(banks))
        groups = [values[i : i + 8] for i in range(0, len(values), 8)]
        out += struct.pack("<I", len(groups))
        for group in groups:
            out += struct.pack("<I", len(group))
            for slot in range(8):
                value = group[slot] if slot < len(group) else b""
                out += struct.pack("<H", len(value)) + value.ljust(TPMU_HA, b"\0")
        return out


def veritee(quote: TpmQuote, at: datetime) -> Verdict:
    try:
        verifier.verify("tpm", dict(quote.evidence), Options(at=at, report_data=quote.nonce))
    except VerifierError as exc:
        return Verdict(False, exc.reason.value, exc.detail)
    return Verdict(True, "ok")


def keylime_case(quote: TpmQuote) -> dict[str, Any]:
    return {
        "oracle": "keylime",
        "ak_pem": quote.ak_pem().decode(),
        "nonce": quote.nonce.hex(),
        "signature": b64(quote.signature),
        "message": b64(quote.message),
        "pcrblob": b64(quote.pcrblob()),
        "hash": quote.hash,
    }


def tpm2_checkquote(quote: TpmQuote) -> Verdict:
    with tempfile.TemporaryDirectory(prefix="veritee-checkquote-") as tmp:
        folder = Path(tmp)
        for name, data in (("ak.pem", quote.ak_pem()), ("msg", quote.message), ("sig", quote.signature)):
            (folder / name).write_bytes(data)
        (folder / "pcrs").write_bytes(quote.pcrblob())
        files = ["-u", "ak.pem", "-m", "msg", "-s", "sig", "-f", "pcrs"]
        done = subprocess.run(
            ["tpm2_checkquote", *files, "-q", quote.nonce.hex(), "-g", quote.hash],
            cwd=folder,
            capture_output=True,
            timeout=30,
            check=False,
        )
    detail = done.stderr.decode(errors="replace").strip().splitlines()
    return Verdict(done.returncode == 0, "ok" if done.returncode == 0 else "refused", detail[0] if detail else "")


def mutations(quote: TpmQuote, count: int, seed: int) -> list[TpmQuote]:
    """count seeded single-byte mutations in each of TPMS_ATTEST, TPMT_SIGNATURE and the PCR values."""
    rng = random.Random(seed)
    out: list[TpmQuote] = []

    def with_quote(name: str, field: str, data: bytes) -> TpmQuote:
        evidence = copy.deepcopy(dict(quote.evidence))
        evidence["tpm_quote"][field] = b64(data)
        return TpmQuote(f"{quote.name} {name}", evidence, quote.nonce)

    for field, data in (("message", quote.message), ("signature", quote.signature)):
        for _ in range(count):
            at, flip = rng.randrange(len(data)), rng.randrange(1, 256)
            changed = data[:at] + bytes([data[at] ^ flip]) + data[at + 1 :]
            out.append(with_quote(f"{field}@{at}^{flip:02x}", field, changed))
    banks = quote.banks()
    for _ in range(count):
        bank = rng.choice(sorted(banks))
        index = rng.choice(sorted(banks[bank]))
        value = bytearray(banks[bank][index])
        at = rng.randrange(len(value))
        value[at] ^= rng.randrange(1, 256)
        evidence = copy.deepcopy(dict(quote.evidence))
        pcrs = evidence["tpm_quote"]["pcrs"]
        if isinstance(pcrs, list):
            pcrs[index] = value.hex()
        else:
            pcrs[bank][str(index)] = value.hex()
        out.append(TpmQuote(f"{quote.name} pcr {bank}:{index}@{at}", evidence, quote.nonce))
    out.append(TpmQuote(f"{quote.name} wrong-nonce", quote.evidence, quote.nonce + b"\x01"))
    return out
