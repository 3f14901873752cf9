"""`attestation-agent keyprovider` read by Rust ocicrypt as image-rs runs a `cmd` key provider: the request built
as ocicrypt-rs builds it, the response deserialised by ocicrypt-rs's own output types with real serde
(tests/guest/rust_ocicrypt, compiled offline from Debian's packaged crates), against a real `kbs serve`.

ocicrypt-rs declares the results as `Vec<u8>`, which serde reads only from an array of integers: the agent writes
that with `--byte-encoding array` (Go ocicrypt reads it too: tests/guest/test_interop.py). A missing cargo or
crate FAILS these tests with the reason (scripts/setup installs them); they never skip.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import policies
from kbs_protocol.keyprovider import wrap_options
from tests.conftest import ROOT, run_cli
from tests.integration._kbs_server import KbsServer

HARNESS = ROOT / "tests" / "guest" / "rust_ocicrypt"
KID = "kbs:///default/key/1"
KEK = bytes(range(32))
OPTIONS = b'{"symkey":"c3ltbWV0cmljIGtleSBmb3IgdGhlIGxheWVy","cipheroptions":{"nonce":"AAAAAAAAAAAAAAAAAAAAAA=="}}'


@pytest.fixture(scope="session")
def rust_ocicrypt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.fail("no cargo: scripts/setup installs it (apt cargo, librust-serde-json-dev, librust-serde-derive-dev)")
    project = tmp_path_factory.mktemp("rust-ocicrypt") / "harness"
    shutil.copytree(HARNESS, project)
    target = ROOT / ".cache" / "rust-ocicrypt-target"  # kept between runs: the build takes tens of seconds
    done = subprocess.run(
        [cargo, "build", "--offline", "--release", "--quiet"],
        cwd=project,
        env={**os.environ, "CARGO_TARGET_DIR": str(target)},
        capture_output=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"the Rust ocicrypt harness does not build (run scripts/setup): {done.stderr.decode()[-2000:]}")
    return target / "release" / "rust-ocicrypt-output"


@pytest.fixture(scope="module")
def kbs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KbsServer]:
    with KbsServer(tmp_path_factory.mktemp("kbs") / "conf") as server:
        server.admin.put_resource("default/key/1", KEK)
        server.admin.put_reference_value("sample_svn", ["1"])
        server.admin.set_resource_policy(policies.load("demo_resource_allow_sample.rego"))
        yield server


def rust_request(annotation: bytes) -> bytes:
    """ocicrypt-rs KeyProviderKeyWrapper::unwrap_keys: the annotation as a base64 string, the DecryptConfig's
    Parameters as base64 strings (base64_hashmap_s), and the unused keywrapparams serialised as nulls."""
    return json.dumps(
        {
            "op": "keyunwrap",
            "keywrapparams": {"ec": None, "optsdata": None},
            "keyunwrapparams": {
                "dc": {"Parameters": {"attestation-agent": [base64.b64encode(b"kbs://").decode()]}},
                "annotation": base64.b64encode(annotation).decode(),
            },
        }
    ).encode()


def rust_reads(harness: Path, stdout: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(harness)], input=stdout, capture_output=True, timeout=60, check=False)


def test_rust_ocicrypt_reads_the_unwrapped_options_as_an_integer_array(rust_ocicrypt: Path, kbs: KbsServer) -> None:
    annotation = wrap_options(KEK, KID, OPTIONS).to_json()
    done = run_cli(
        "attestation-agent", "keyprovider", "--kbs", kbs.url, "--tee", "sample", "--byte-encoding", "array",
        input=rust_request(annotation),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout) == {"keyunwrapresults": {"optsdata": list(OPTIONS)}}
    read = rust_reads(rust_ocicrypt, done.stdout)
    assert read.returncode == 0, read.stderr.decode()
    assert read.stdout.decode().split() == ["optsdata", OPTIONS.hex()]


def test_rust_ocicrypt_cannot_read_base64_results(rust_ocicrypt: Path, kbs: KbsServer) -> None:
    """Why the option exists: the default (base64, what Go ocicrypt writes and SPEC's default) is not a sequence
    to serde."""
    annotation = wrap_options(KEK, KID, OPTIONS).to_json()
    request = rust_request(annotation)
    done = run_cli("attestation-agent", "keyprovider", "--kbs", kbs.url, "--tee", "sample", input=request)
    assert done.returncode == 0, done.stderr.decode()
    read = rust_reads(rust_ocicrypt, done.stdout)
    assert read.returncode == 1
    assert "invalid type: string" in read.stderr.decode()
    assert "expected a sequence" in read.stderr.decode()
