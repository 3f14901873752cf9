"""Fuzz targets: one function per parser, bytes in, and the only exceptions each may raise (its typed format
error). Used by the coverage-guided fuzzer (bench/fuzz.py, scripts/fuzz, atheris in the oracle venv) and by the
replay test of the committed seed corpora and crash regressions (test_corpora.py, any venv).

Each target parses only: no signature, chain or clock. Anything else escaping a target is a finding.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import verifier
from guest._errors import LayoutError
from guest._layout import OciLayout
from guest._manifests import Descriptor
from kbs_protocol.keyprovider import AnnotationPacket, KeyProviderError, parse_request
from verifier import FormatError, Options, VerifierError
from verifier.azure._evidence import parse_evidence as parse_azure_evidence
from verifier.azure._hcl import parse_hcl_report
from verifier.azure._runtime import parse_runtime_data
from verifier.eventlog import parse as parse_eventlog
from verifier.snp._abi import parse_report
from verifier.snp._evidence import parse_evidence as parse_snp_evidence
from verifier.tdx import parse_quote
from verifier.tdx._collateral import parse_qe_identity, parse_tcb_info, recognise
from verifier.tpm._evidence import parse_evidence as parse_tpm_evidence
from verifier.tpm._public import parse_public
from verifier.tpm._structures import parse_attest, parse_signature

__all__ = ["TARGETS", "Target"]


@dataclass(frozen=True)
class Target:
    run: Callable[[bytes], object]
    allowed: tuple[type[BaseException], ...]
    about: str
    seeds_pass: bool = True  # the seeds are inputs the target accepts (False: they reach a typed refusal)
    max_len: int = 16 * 1024  # the fuzzer's largest input


def _json(data: bytes) -> object:
    """Evidence JSON as the broker decodes it before a parser sees it (its errors, a nesting too deep for
    json included, are the broker's edge, not the parser's): None when it does not decode."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


_TEES = ("sample", "tpm", "snp", "tdx", "az-snp-vtpm", "az-tdx-vtpm")
_AT = datetime(2026, 1, 1, tzinfo=UTC)


def evidence(data: bytes) -> None:
    """Evidence bytes through the verifier's own entry point (`verifier verify`): JSON decoding, the evidence
    schema of each TEE, parsing, and whatever verification a mutated input reaches. First byte picks the TEE."""
    if data:
        verifier.verify(_TEES[data[0] % len(_TEES)], data[1:], Options(at=_AT))


def tdx_quote(data: bytes) -> None:
    parse_quote(data)


def snp_report(data: bytes) -> None:
    """The raw 1184-byte report, or (starting with "{") the evidence JSON around it (docs/evidence.md)."""
    if data[:1] == b"{":
        doc = _json(data)
        if isinstance(doc, dict):
            parse_snp_evidence(doc)
        return
    parse_report(data)


def tpm_structures(data: bytes) -> None:
    """First byte picks the structure: TPMS_ATTEST, TPMT_SIGNATURE, TPMT_PUBLIC, or the evidence JSON."""
    if not data:
        return
    which, rest = data[0] % 4, data[1:]
    if which == 0:
        parse_attest(rest)
    elif which == 1:
        parse_signature(rest)
    elif which == 2:
        parse_public(rest)
    else:
        doc = _json(rest)
        if isinstance(doc, dict):
            parse_tpm_evidence(doc)


def tcg2_eventlog(data: bytes) -> None:
    parse_eventlog(data, "tcg2").replay()


def cc_eventlog(data: bytes) -> None:
    parse_eventlog(data, "ccel").replay()


def collateral(data: bytes) -> None:
    """TCB info and QE identity JSON, and content recognition of any collateral document (CRL, PEM chain)."""
    for parse in (parse_tcb_info, parse_qe_identity):
        with contextlib.suppress(FormatError):
            parse(data)
    recognise([data])


_SPLIT = b"\n--blob--\n"


class _Blob:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read_bytes(self) -> bytes:
        return self.data


class _MemoryLayout(OciLayout):
    """OciLayout's parsing (index, descriptors, manifest, config, digest and size checks) over blobs in memory:
    the file-system checks (regular files, symlinks) are tests/guest's, and a file costs ~1 ms per input."""

    def __init__(self, index: bytes, blobs: dict[str, bytes]) -> None:  # no super(): no directory to check
        self.directory = Path("/in-memory")
        self._index = index
        self._blobs = blobs

    def _read_small(self, path: Path, what: str) -> bytes:  # type: ignore[override]
        return self._index

    def blob_path(self, desc: Descriptor) -> Path:
        data = self._blobs.get(desc.digest)
        if data is None:
            raise LayoutError(f"blob {desc.digest}: missing")
        if len(data) != desc.size:
            raise LayoutError(f"blob {desc.digest}: size is {len(data)}, descriptor says {desc.size}")
        return _Blob(data)  # type: ignore[return-value]


def oci_layout(data: bytes) -> None:
    """index.json, an image manifest and its config, split at _SPLIT. A fuzzer cannot find a sha256, so in the
    index @DIGEST@ and @SIZE@ stand for the manifest blob's digest and size, and in the manifest @CONFIG@ and
    @CONFIGSIZE@ for the config's. Then resolve the image and read the config's diff_ids."""
    index, _, rest = data.partition(_SPLIT)
    manifest, _, config = rest.partition(_SPLIT)
    config_digest = f"sha256:{hashlib.sha256(config).hexdigest()}"
    manifest = manifest.replace(b"@CONFIG@", config_digest.encode()).replace(b"@CONFIGSIZE@", b"%d" % len(config))
    digest = f"sha256:{hashlib.sha256(manifest).hexdigest()}"
    index = index.replace(b"@DIGEST@", digest.encode()).replace(b"@SIZE@", b"%d" % len(manifest))
    layout = _MemoryLayout(index, {digest: manifest, config_digest: config})
    layout.diff_ids(layout.resolve(None))


def azure_evidence(data: bytes) -> None:
    """Azure CVM evidence JSON (versions 0 to 2: serde byte arrays, hex, base64url), then the HCL report it
    carries and that report's runtime data. First byte picks az-snp-vtpm or az-tdx-vtpm."""
    if not data:
        return
    doc = _json(data[1:])
    if isinstance(doc, dict):
        evidence = parse_azure_evidence(doc, ("az-snp-vtpm", "az-tdx-vtpm")[data[0] % 2])
        parse_runtime_data(parse_hcl_report(evidence.hcl_report).runtime_data)


def keyprovider(data: bytes) -> None:
    """An ocicrypt key-provider request (docs/images.md) and the annotation packet it may carry."""
    request = parse_request(data)
    annotation = getattr(request, "annotation", None)
    if annotation is not None:
        AnnotationPacket.from_json(annotation)


TARGETS: dict[str, Target] = {
    "evidence": Target(
        evidence, (VerifierError,), "verifier.verify on evidence bytes (JSON or raw), every TEE", seeds_pass=False
    ),
    "tdx_quote": Target(tdx_quote, (FormatError,), "verifier.tdx.parse_quote (quote v4/v5)"),
    "snp_report": Target(
        snp_report, (FormatError,), "verifier.snp ATTESTATION_REPORT and evidence JSON (sev-serde and base64)"
    ),
    "tpm_structures": Target(
        tpm_structures, (FormatError,), "TPMS_ATTEST, TPMT_SIGNATURE, TPMT_PUBLIC, TPM evidence JSON"
    ),
    "tcg2_eventlog": Target(tcg2_eventlog, (FormatError,), "TCG2 crypto-agile event log, parse and replay"),
    "cc_eventlog": Target(cc_eventlog, (FormatError,), "CC event log (CCEL), parse and replay"),
    "collateral": Target(collateral, (FormatError,), "DCAP TCB info / QE identity JSON, collateral recognition"),
    "oci_layout": Target(oci_layout, (LayoutError,), "OCI index.json, image manifest and config (in memory)"),
    "azure_evidence": Target(
        azure_evidence,
        (FormatError,),
        "Azure CVM evidence JSON (serde v0, v1, v2), HCL report, runtime data",
        max_len=64 * 1024,
    ),
    "keyprovider": Target(keyprovider, (KeyProviderError,), "ocicrypt key-provider request and annotation"),
}
