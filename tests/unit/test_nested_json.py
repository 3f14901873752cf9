"""JSON nested deeper than Python's json module can decode (it raises RecursionError, not a ValueError) is a
typed error wherever Veritee decodes JSON: found while writing the fuzz targets of issue 17 (the crash inputs are
in tests/fuzz/crashes and replayed by tests/fuzz/test_corpora.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

import verifier
from guest._errors import DecryptionError, LayoutError, PolicyError, RegistryError
from guest._keys import Keyring, _load_private_key
from guest._manifests import load_json_object
from guest._ocicrypt import _json_object
from guest._policy import Policy as SignaturePolicy
from guest._registry_auth import credentials_for
from kbs_protocol.keyprovider import AnnotationPacket, KeyProviderError, parse_request
from tests.conftest import run_cli
from verifier import FormatError, Options
from verifier.tdx._collateral import parse_qe_identity, parse_tcb_info

DEPTH = 100_000
ARRAY = b"[" * DEPTH + b"]" * DEPTH
OBJECT = b'{"a":' * DEPTH + b"1" + b"}" * DEPTH


def test_json_itself_raises_recursion_error() -> None:
    with pytest.raises(RecursionError):
        json.loads(ARRAY)


def _evidence(data: bytes) -> None:
    verifier.verify("snp", data, Options(at=datetime.now(UTC)))


def _keyunwrap(data: bytes) -> None:
    parse_request(b'{"op":"keyunwrap","keyunwrapparams":{"annotation":' + data + b"}}")


CASES: dict[str, tuple[Callable[[bytes], object], type[Exception]]] = {
    "verifier evidence JSON": (_evidence, FormatError),
    "tdx tcbInfo": (parse_tcb_info, FormatError),
    "tdx enclaveIdentity": (parse_qe_identity, FormatError),
    "keyprovider request": (parse_request, KeyProviderError),
    "keyprovider request member": (_keyunwrap, KeyProviderError),
    "keyprovider annotation": (AnnotationPacket.from_json, KeyProviderError),
    "oci index or manifest": (lambda d: load_json_object(d, "index.json"), LayoutError),
    "ocicrypt options": (lambda d: _json_object(d, "private options"), DecryptionError),
    "guest private key file": (lambda d: _load_private_key(d, "key.json"), DecryptionError),
    "guest signature policy.json": (SignaturePolicy.parse, PolicyError),
    "guest registry auth.json": (lambda d: credentials_for(d, "registry.test/repo", "auth.json"), RegistryError),
}


@pytest.mark.parametrize("data", [OBJECT, ARRAY[:-1] + b"]"], ids=["object", "array"])
@pytest.mark.parametrize(("parse", "error"), CASES.values(), ids=CASES.keys())
def test_deep_nesting_is_a_typed_error(parse: Callable[[bytes], object], error: type[Exception], data: bytes) -> None:
    if not data.startswith(b"{") and parse in (_evidence, parse_tcb_info, parse_qe_identity):
        data = b'{"tcbInfo":' + data + b',"signature":"00"}'
    with pytest.raises(error):
        parse(data)


def test_guest_jwe_of_deep_nesting_is_refused() -> None:
    assert Keyring()._unwrap_jwe(OBJECT) == "the JWE is not JSON"


def test_verifier_cli_prints_a_reason(tmp_path: Path) -> None:
    (tmp_path / "evidence.json").write_bytes(OBJECT)
    done = run_cli("verifier", "verify", "--tee", "snp", str(tmp_path / "evidence.json"))
    assert done.returncode == 1, done.stderr
    assert b"Traceback" not in done.stderr
    assert json.loads(done.stdout)["error"]["reason"] == "malformed_evidence"
