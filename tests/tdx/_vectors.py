"""The real TDX vectors (tests/vectors/tdx) and the values EXPECTED.log gives for them, shared by the TDX tests.

The go-tdx-guest collateral is judged at a time inside its validity (AT_GO_TDX_GUEST); the trustee collateral has
expired by the vectors' evaluation date (AT_EXPECTED_LOG).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

import verifier
from verifier import Options, Reason, VerifierError

# go-tdx-guest's TCB info (issued 2023-06-18), QE identity and PCK CRL (2023-06-08) are all valid here.
AT_GO_TDX_GUEST = datetime(2023, 6, 20, tzinfo=UTC)
# "### evaluation date 2026-11-27" in EXPECTED.log.
AT_EXPECTED_LOG = datetime(2026, 11, 27, tzinfo=UTC)

GO_TDX_GUEST = (
    "sample_tcbInfo_response",
    "sample_qeIdentity_response",
    "tcbInfoIssuerChain.pem",
    "pckcrl",
    "pckCrlIssuerChain.pem",
    "rootcrl.der",
)
# trustee ships only the two JSON documents; their issuer chain and the CRLs come from go-tdx-guest.
TRUSTEE = ("tcbInfo.json", "enclaveIdentity.json")


def quote(vectors: Path, n: int) -> bytes:
    return (vectors / "tdx" / "trustee" / f"tdx_quote_{n}.dat").read_bytes()


def go_tdx_guest(vectors: Path, *names: str) -> tuple[bytes, ...]:
    return tuple((vectors / "tdx" / "go-tdx-guest" / name).read_bytes() for name in names or GO_TDX_GUEST)


def trustee(vectors: Path) -> tuple[bytes, ...]:
    chains = go_tdx_guest(vectors, "tcbInfoIssuerChain.pem", "pckcrl", "pckCrlIssuerChain.pem", "rootcrl.der")
    return tuple((vectors / "tdx" / "trustee" / name).read_bytes() for name in TRUSTEE) + chains


def check(evidence: bytes, **options: object) -> verifier.Verified:
    return verifier.verify("tdx", evidence, Options(**options))  # type: ignore[arg-type]


def reason_of(evidence: bytes, **options: object) -> Reason:
    with pytest.raises(VerifierError) as info:
        check(evidence, **options)
    return info.value.reason


# EXPECTED.log: quote fields.
QUOTE_FIELDS = {
    4: {
        "version": 4,
        "trailing": 0,
        "tee_tcb_svn": "03000500000000000000000000000000",
        "mr_seam": "2fd279c16164a93dd5bf373d834328d46008c2b693af9ebb865b08b2ced320c9a89b4869a9fab60fbe9d0c5a5363c656",
        "td_attributes": "0100001000000000",
        "xfam": "e742060000000000",
        "mr_td": "705ee9381b8633a9fbe532b52345e8433343d2868959f57889d84ca377c395b689cac1599ccea1b7d420483a9ce5f031",
        "rtmr0": "e940da7c2712d2790e2961e00484f4fa8e6f9eed71361655ae22699476b14f9e63867eb41edd4b480fef0c59f496b288",
        "rtmr1": "559cfcf42716ed6c40a48a73d5acb7da255435012f0a9f00fbe8c1c57612ede486a5684c4c9ff3ddf52315fcdca3a596",
        "report_data": "7c71fe2c86eff65a7cf8dbc22b3275689fd0464a267baced1bf94fc1324656ae"
        "b755da3d44d098c0c87382f3a5f85b45c8a28fee1d3bdb38342bf96671501429",
        "user_data": "d099bfec0a477aa85a605dceabf2b10800000000",
        "qe_isvsvn": 4,
        "qe_mrenclave": "853e298f3b7cde28b06493d06fb2ad6f9566a97fea6d3de66236b2af1a35150f",
    },
    5: {
        "version": 5,
        "trailing": 0,
        "tee_tcb_svn": "05010200000000000000000000000000",
        "mr_seam": "1cc6a17ab799e9a693fac7536be61c12ee1e0fabada82d0c999e08ccee2aa86de77b0870f558c570e7ffe55d6d47fa04",
        "td_attributes": "0000001000000000",
        "xfam": "e742060000000000",
        "mr_td": "dfba221b48a22af8511542ee796603f37382800840dcd978703909bf8e64d4c8a1e9de86e7c9638bfcba422f3886400a",
        "rtmr0": "9b529f3689e2e8ebb899e9abbbc3dab394d6545e8cdb28a2abb9cc2f377b83a65c01ba56b824cd3ee885df20051f5128",
        "rtmr1": "ca5a979317ffe8a527a3b7aadab03976d7cb6eef1041fb9bd9d69e6fafa7252cdc10e4c2a55e7ecbd2ddb5cacc867430",
        "report_data": "6d6ab13b046cff606ac0074be13981b07b6325dba10b5facc96febf551c0c3be"
        "2b75f92fe1f88f4bb996969ad0174b4b7a70261b7b85c844f4b33a4674fd049f",
        "user_data": "da2c7e326c5696889a6a6ab4f8a64b1700000000",
        "qe_isvsvn": 6,
        "qe_mrenclave": "e5a3a7b5d830c2953b98534c6c59a3a34fdc34e933f7f5898f0a85cf08846bca",
    },
    6: {
        "version": 4,
        "trailing": 70,
        "tee_tcb_svn": "05030200000000000000000000000000",
        "mr_seam": "476a2997c62bccc78370913d0a80b956e3721b24272bc66c4d6307ced4be2865c40e26afac75f12df3425b03eb59ea7c",
        "td_attributes": "0000001000000000",
        "xfam": "e702060000000000",
        "mr_td": "21e8dead92d6c69d7cbba79816686c03a48485c7df0c11f6f04792d5e1d378f6b8c46615ba6946adccac6becffbb1e88",
        "rtmr0": "395aefe7bac15b24c40f1cd7ba6f8fa48732be5c56c61485ed3cd9c8b16cce8ece64c331b99ce36d96605135c753aaa2",
        "rtmr1": "fc4b0f849d8d76fdf1da563a8c29d0d456b484a65e01797baf52ea1d8c002040527a1f0278925077219656dba039429f",
        "report_data": "26cae1c77185617fb6a03fc29bf1f924596e52352b9b7594940b576ae126cd4a"
        "570cc3202a900c5d19a6eb0a95b32cfd00000000000000000000000000000000",
        "user_data": "5bd9e09e6e0bbcd3f9cc4d7c9295764a00000000",
        "qe_isvsvn": 7,
        "qe_mrenclave": "b7ae9ab69e76f7794a56b0db1915281d435d488c91d406ed33a7939caf8730f8",
    },
}


# EXPECTED.log, "CCEL replays (trustee)".
OVMF_RTMRS = (
    "8566f998798db09443b244c62de9a3041fb02e2e6936c4396d784bba2e90177329ec5aba3bb484404f2ab9cc90abe193",
    "775b9f6bfe99f8a31396f0d0218e67ffa796d3b96ccf961cbb0deba48c79c00f082cda1a5567c1c16305f1fc210c13c6",
    "94eaf7a7bf398ed8d888c91057ae0261802e4f3df084213a76ca7f0b5055ac9d2241de43cd58d9e8b49c503bbf25f34a",
)
CCEL_DATA_RTMRS = (
    "2dc712306a963eadb894ad47dbaa17df44814151555aee11cbb843becca88950ffd079664902e6f22c66f7c8213543f4",
    "0fa3be56af61208bbd179dc7b124988eb929319154663c539d6f46445ecac2fec287075047ff7bd1922829fec28cd3cf",
)
