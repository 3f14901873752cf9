"""Init-data: CoCo's TOML (`version`, `algorithm`, `[data]`), checked against the TEE's binding at start-up.

The host binds the digest of the init-data TOML (its `algorithm` over the raw bytes) where the TEE measures it
(docs/protocol.md, init-data binding): TDX MRCONFIGID (48 bytes, zero-padded), SNP HOST_DATA (32 bytes, the
digest truncated), TPM PCR 8 == SHA-256(32 zero bytes || digest). `bind` makes sure the running TEE carries this
init-data before the agent sends it with any attestation: TDX and SNP are read back from a fresh report; a TPM
whose PCR 8 is still at reset is extended once, and one already extended must hold exactly this digest. Other
TEEs (the Azure CVMs) bind through their attester, and only the verifier checks it. The sample TEE has no binding:
its init-data is taken as given (and the sample TEE is never trusted anyway).

    >>> parse('version = "0.1.0"\\nalgorithm = "sha384"\\n[data]\\nrole = "db"\\n').data
    {'role': 'db'}
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from typing import Any

from .attesters import Attester, AttesterError

__all__ = ["InitData", "InitDataError", "bind", "parse"]

_HASHES = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}
MRCONFIGID_SIZE = 48
HOST_DATA_SIZE = 32
MAX_INIT_DATA = 256 * 1024


class InitDataError(Exception):
    """The init-data file is malformed, or the TEE is bound to other init-data (init_data_mismatch)."""


@dataclass(frozen=True)
class InitData:
    body: str  # the TOML exactly as the host bound it: the digest is over these bytes
    algorithm: str
    digest: bytes
    data: dict[str, Any]


def parse(body: str) -> InitData:
    if len(body.encode()) > MAX_INIT_DATA:
        raise InitDataError(f"init-data is {len(body.encode())} bytes, at most {MAX_INIT_DATA}")
    try:
        document = tomllib.loads(body)
    except tomllib.TOMLDecodeError as exc:
        raise InitDataError(f"init-data is not TOML: {exc}") from exc
    algorithm = document.get("algorithm", "sha384")
    if algorithm not in _HASHES:
        raise InitDataError(f"init-data algorithm is {algorithm!r}, expected one of {sorted(_HASHES)}")
    if not isinstance(document.get("version", ""), str):
        raise InitDataError("init-data version is not a string")
    data = document.get("data", {})
    if not isinstance(data, dict):
        raise InitDataError("init-data [data] is not a table")
    return InitData(body=body, algorithm=algorithm, digest=_HASHES[algorithm](body.encode()).digest(), data=data)


def _mismatch(field: str, carried: bytes, expected: bytes) -> InitDataError:
    return InitDataError(
        f"init_data_mismatch: {field} is {carried.hex()}, this init-data needs {expected.hex()}: the TEE was "
        "launched with other init-data"
    )


def _tdx(attester: Attester, init: InitData) -> None:
    import base64  # noqa: PLC0415

    from verifier.errors import FormatError  # noqa: PLC0415 (only for a TDX guest with init-data)
    from verifier.tdx import parse_quote  # noqa: PLC0415

    if len(init.digest) > MRCONFIGID_SIZE:
        raise InitDataError(f"init-data digest ({init.algorithm}) is {len(init.digest)} bytes: MRCONFIGID holds 48")
    try:
        quote = parse_quote(base64.b64decode(str(attester.evidence(bytes(64))["quote"])))
    except FormatError as exc:
        raise InitDataError(f"the TD quote to read MRCONFIGID from does not parse: {exc}") from exc
    expected = init.digest.ljust(MRCONFIGID_SIZE, b"\x00")
    if quote.body.mr_config_id != expected:
        raise _mismatch("MRCONFIGID", quote.body.mr_config_id, expected)


def _snp(attester: Attester, init: InitData) -> None:
    from verifier.errors import FormatError  # noqa: PLC0415 (only for an SNP guest with init-data)
    from verifier.snp import parse_report  # noqa: PLC0415
    from verifier.snp._evidence import parse_evidence  # noqa: PLC0415

    try:
        report = parse_report(parse_evidence(attester.evidence(bytes(64))).report)
    except FormatError as exc:
        raise InitDataError(f"the SNP report to read HOST_DATA from does not parse: {exc}") from exc
    expected = init.digest[:HOST_DATA_SIZE].ljust(HOST_DATA_SIZE, b"\x00")
    if report.host_data != expected:
        raise _mismatch("HOST_DATA", report.host_data, expected)


def _tpm(attester: Attester, init: InitData) -> None:
    from .attesters.tpm import TpmAttester  # noqa: PLC0415

    assert isinstance(attester, TpmAttester)
    if init.algorithm != "sha256":
        raise InitDataError('a TPM binds only SHA-256 init-data in PCR 8: set algorithm = "sha256"')
    expected = hashlib.sha256(bytes(32) + init.digest).digest()
    current = attester.pcr(8)
    if current == bytes(32):
        attester.bind_init_data(init.digest)
        current = attester.pcr(8)
    if current != expected:
        raise _mismatch("PCR 8", current, expected)


def bind(attester: Attester, init: InitData) -> None:
    """Make sure the TEE is bound to this init-data (see the module docstring); InitDataError otherwise."""
    try:
        if attester.tee == "tdx":
            _tdx(attester, init)
        elif attester.tee == "snp":
            _snp(attester, init)
        elif attester.tee == "tpm":
            _tpm(attester, init)
        elif attester.tee != "sample":
            # Other TEEs (the Azure CVMs' vTPM) bind as their attester does: checked by the verifier only.
            attester.bind_init_data(init.digest)
    except AttesterError as exc:
        raise InitDataError(f"cannot read the {attester.tee} init-data binding: {exc}") from exc
