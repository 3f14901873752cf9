"""The trust anchors shipped as package data are the upstream files of tests/vectors/PROVENANCE.md, byte for byte
(or, for Google's vTPM CAs, the PEM form of the same DER), with the digests their roots/README.md files state."""

from __future__ import annotations

import hashlib
from importlib import resources

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.conftest import VECTORS

# (package, file) -> (the vector it was copied from, its sha256 as roots/README.md states it)
BYTE_FOR_BYTE = {
    ("verifier.snp", "milan.pem"): (
        "snp/trustee/milan_ask_ark_asvk.pem",
        "cc871f0d2294176386175d9b5b962e18556b15ec13f55f8698b5f7a07aebf0c7",
    ),
    ("verifier.snp", "genoa.pem"): (
        "snp/trustee/genoa_ask_ark_asvk.pem",
        "7397ae50f4bac4699393121cf7ce9e72bac49f9f7b8c524be8df97e59ca151e3",
    ),
    ("verifier.snp", "turin.pem"): (
        "snp/trustee/turin_ask_ark_asvk.pem",
        "34251ef16c414387e2bf36a69b675329156361e6e8113241209e46ebbd6da93f",
    ),
    ("verifier.tdx", "intel_sgx_root_ca.pem"): (
        "tdx/go-tdx-guest/trusted_root.pem",
        "194123d2a18be2beb525d0f0cc10a8998be1e63d7a0ecb723cb194f3e9833912",
    ),
}
# Google's vTPM CAs: PEM here, DER upstream; the digest is the DER's.
PEM_OF_DER = {
    "google-gcp_ek_ak_ca_root.pem": (
        "tpm/go-tpm-tools/gcp_ek_ak_ca_root.crt",
        "594759594b9b61524f6c8ef668f7177f7b9066bc0674f2f49fe9e052be78beb2",
    ),
    "google-gcp_ek_ak_ca_intermediate_v3.pem": (
        "tpm/go-tpm-tools/gcp_ek_ak_ca_intermediate_v3.crt",
        "c84de8116dfaf5a908f21e810487791f5437e206d00ad8025050cca6bd2ff627",
    ),
    "google-tpm_ek_root_1.pem": (
        "tpm/go-tpm-tools/tpm_ek_root_1.cer",
        "9bd5285f8fb18502a7947e621ffd470266f49fcd3b73e19a190f690ad32a7caf",
    ),
    "google-tpm_ek_intermediate_2.pem": (
        "tpm/go-tpm-tools/tpm_ek_intermediate_2.crt",
        "5d8dbcf8c8053dd8ffad711b6219355032b7122c34cac0f90ccb49def69ec504",
    ),
    "google-tpm_ek_intermediate_3.pem": (
        "tpm/go-tpm-tools/tpm_ek_intermediate_3.crt",
        "7132b6ea71101f6c51bb58f98c3798c19b65be510eca0344318900510b593178",
    ),
}


def packaged(package: str, name: str) -> bytes:
    return (resources.files(package) / "roots" / name).read_bytes()


@pytest.mark.parametrize(("package", "name"), sorted(BYTE_FOR_BYTE))
def test_packaged_root_is_the_upstream_file(package: str, name: str) -> None:
    vector, sha256 = BYTE_FOR_BYTE[(package, name)]
    data = packaged(package, name)
    assert hashlib.sha256(data).hexdigest() == sha256
    assert data == (VECTORS / vector).read_bytes()


@pytest.mark.parametrize("name", sorted(PEM_OF_DER))
def test_packaged_tpm_ca_is_the_pem_of_the_upstream_der(name: str) -> None:
    vector, sha256 = PEM_OF_DER[name]
    der = x509.load_pem_x509_certificate(packaged("verifier.tpm", name)).public_bytes(Encoding.DER)
    assert hashlib.sha256(der).hexdigest() == sha256
    assert der == (VECTORS / vector).read_bytes()


def test_every_packaged_root_is_pinned_here() -> None:
    shipped = {
        (package, entry.name)
        for package in ("verifier.snp", "verifier.tdx", "verifier.tpm")
        for entry in (resources.files(package) / "roots").iterdir()
        if entry.name.endswith(".pem")
    }
    assert shipped == set(BYTE_FOR_BYTE) | {("verifier.tpm", name) for name in PEM_OF_DER}
