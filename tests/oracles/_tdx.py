"""TDX inputs for the differential suite: collateral in the shapes each verifier takes, Veritee's verdict, and
the seeded single-byte mutations of a quote's regions."""

from __future__ import annotations

import json
import random
import struct
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

import verifier
from verifier import Options, VerifierError
from verifier.tdx import parse_quote

from ..tdx.make_test_chain import DcapPki, _pem
from ._harness import Verdict, b64


def _crl_der(blob: bytes) -> bytes:
    crl = x509.load_pem_x509_crl(blob) if blob.lstrip().startswith(b"-----") else x509.load_der_x509_crl(blob)
    return crl.public_bytes(Encoding.DER)


def _crl_pem(der: bytes) -> str:
    return x509.load_der_x509_crl(der).public_bytes(Encoding.PEM).decode()


def _inner(doc: bytes, key: str) -> tuple[str, str]:
    """The signed inner object of a collateral document as it is written (never re-serialised), and its signature."""
    text = doc.decode()
    start = text.index("{", text.index(f'"{key}"') + len(key) + 2)
    _, end = json.JSONDecoder().raw_decode(text, start)
    return text[start:end], str(json.loads(text)["signature"])


@dataclass(frozen=True)
class TdxCollateral:
    root_pem: bytes
    root_crl: bytes  # DER
    pck_crl: bytes  # DER
    pck_crl_chain: bytes  # PEM: PCK CA, root
    tcb_chain: bytes  # PEM: TCB signing, root
    tcb_info: bytes
    qe_identity: bytes

    @classmethod
    def of_pki(cls, pki: DcapPki) -> TdxCollateral:
        return cls(
            root_pem=pki.root_pem,
            root_crl=pki.root_crl.public_bytes(Encoding.DER),
            pck_crl=pki.pck_crl.public_bytes(Encoding.DER),
            pck_crl_chain=_pem(pki.pck_ca, pki.root),
            tcb_chain=_pem(pki.tcb_signer, pki.root),
            tcb_info=pki.tcb_info,
            qe_identity=pki.qe_identity,
        )

    @classmethod
    def of_files(cls, folder: Path, tcb_info: Path, qe_identity: Path) -> TdxCollateral:
        """go-tdx-guest's layout of Intel's collateral (the real vectors)."""
        return cls(
            root_pem=(folder / "trusted_root.pem").read_bytes(),
            root_crl=_crl_der((folder / "rootcrl.der").read_bytes()),
            pck_crl=_crl_der((folder / "pckcrl").read_bytes()),
            pck_crl_chain=(folder / "pckCrlIssuerChain.pem").read_bytes(),
            tcb_chain=(folder / "tcbInfoIssuerChain.pem").read_bytes(),
            tcb_info=tcb_info.read_bytes(),
            qe_identity=qe_identity.read_bytes(),
        )

    def documents(self) -> tuple[bytes, ...]:
        """What Veritee takes: every document as given, recognised by content."""
        return (self.tcb_info, self.qe_identity, self.tcb_chain, self.pck_crl, self.root_crl, self.pck_crl_chain)

    def for_oracles(self) -> dict[str, Any]:
        tcb_inner, tcb_sig = _inner(self.tcb_info, "tcbInfo")
        qe_inner, qe_sig = _inner(self.qe_identity, "enclaveIdentity")
        root = x509.load_pem_x509_certificate(self.root_pem)
        return {
            "root_pem": self.root_pem.decode(),
            "root_der": b64(root.public_bytes(Encoding.DER)),
            "root_crl_der": b64(self.root_crl),
            "root_crl_pem": _crl_pem(self.root_crl),
            "pck_crl_der": b64(self.pck_crl),
            "pck_crl_pem": _crl_pem(self.pck_crl),
            "pck_crl_chain": self.pck_crl_chain.decode(),
            "tcb_chain": self.tcb_chain.decode(),
            "tcb_info": self.tcb_info.decode(),
            "tcb_info_inner": tcb_inner,
            "tcb_info_signature": tcb_sig,
            "qe_identity": self.qe_identity.decode(),
            "qe_identity_inner": qe_inner,
            "qe_identity_signature": qe_sig,
        }


def veritee(quote: bytes, collateral: TdxCollateral, at: datetime, *, test_root: bool) -> Verdict:
    """Veritee's verdict: accepted with Intel's TCB status, or refused with a reason code. Anything else than a
    VerifierError escapes and fails the test (a traceback is a bug, not a verdict)."""
    options = Options(
        at=at,
        collateral=collateral.documents(),
        trust={"tdx": (collateral.root_pem,)} if test_root else {},
    )
    try:
        claims = verifier.verify("tdx", quote, options).claims
    except VerifierError as exc:
        return Verdict(False, exc.reason.value, exc.detail)
    claimed = {"debug": claims["debug"], "tdx_module_tcb_status": claims.get("tdx_module_tcb_status")}
    return Verdict(True, str(claims["tcb_status"]), "", claimed)


def oracle_cases(quote: bytes, collateral: TdxCollateral, at: datetime, *, test_root: bool) -> list[dict[str, Any]]:
    coll = collateral.for_oracles()
    if not test_root:
        coll.pop("root_der")  # dcap-qvl then uses its own pinned Intel root
    base = {"quote": b64(quote), "collateral": coll, "at": int(at.timestamp())}
    return [{"oracle": "qvl", **base}, {"oracle": "dcap-qvl", **base}]


def regions(quote: bytes) -> dict[str, tuple[int, int]]:
    """[QGL] appendix A regions of a v4 quote, by offset: header, body, signature, attestation key, QE report,
    QE report signature and certification data (QE auth data and the PCK chain)."""
    version = parse_quote(quote).header.version
    body_end = 48 + 584 if version == 4 else 48 + 6 + struct.unpack_from("<I", quote, 50)[0]  # v5: descriptor
    sig = body_end + 4
    qe = sig + 64 + 64 + 6
    (sig_len,) = struct.unpack_from("<I", quote, body_end)
    return {
        "header": (0, 48),
        "body": (48, body_end),
        "signature": (sig, sig + 64),
        "attestation_key": (sig + 64, sig + 128),
        "qe_report": (qe, qe + 384),
        "qe_report_signature": (qe + 384, qe + 448),
        "certification_data": (qe + 448, sig + sig_len),
    }


def in_chain_root(quote: bytes, offset: int) -> bool:
    """Whether offset lies inside the last PEM certificate of the quote's PCK chain (the root CA's copy)."""
    start = quote.rfind(b"-----BEGIN CERTIFICATE-----")
    end = quote.find(b"-----END CERTIFICATE-----", start)
    return 0 <= start <= offset < end + len(b"-----END CERTIFICATE-----")


def mutations(quote: bytes, per_region: int, seed: int) -> list[tuple[str, bytes]]:
    """Seeded single-byte mutations, per_region in each region (offset and new byte drawn from the seed)."""
    rng = random.Random(seed)
    out: list[tuple[str, bytes]] = []
    for name, (start, end) in regions(quote).items():
        for _ in range(per_region):
            offset = rng.randrange(start, end)
            value = quote[offset] ^ rng.randrange(1, 256)
            out.append((f"{name}@{offset}^{value:02x}", quote[:offset] + bytes([value]) + quote[offset + 1 :]))
    return out
