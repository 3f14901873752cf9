"""The protocols through which collateral that lives outside the evidence reaches the verifier.

The verifier does no I/O: a caller that can fetch (the broker: `kbs.collateral`'s Intel PCS/PCCS and AMD KDS
clients, its enrolment table) passes objects of these protocols in `Options`, one field per kind of collateral.
Sources return raw bytes; the verifier checks them as if they had been given offline, so a bad source can make
a verification fail, never pass. A source that is needed but unset, or that is not of its field's protocol, is
`SourceError` (collateral_missing) for every TEE.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .errors import SourceError

if TYPE_CHECKING:
    from .snp._abi import Tcb

__all__ = [
    "EnrolledAkSource",
    "SnpCertificateSource",
    "TdxCollateralSource",
    "snp_certificates",
    "tdx_collateral",
    "tpm_enrolled_aks",
]


@runtime_checkable
class TdxCollateralSource(Protocol):
    """`Options.tdx_collateral`: DCAP collateral when Options.collateral lacks it (Intel PCS v4, a PCCS, a cache).

    Returns raw documents (TCB info JSON, QE identity JSON, CRLs in DER or PEM, issuer chains in PEM) for the
    platform's FMSPC and PCK issuing CA ("platform" or "processor"). Raises VerifierError (collateral_missing)
    when they cannot be had.
    """

    def tdx_collateral(self, fmspc: bytes, ca: str) -> Sequence[bytes]: ...


@runtime_checkable
class SnpCertificateSource(Protocol):
    """`Options.snp_certificates`: AMD certificates the evidence does not carry (an AMD KDS client).

    vcek: the DER VCEK for this product, hardware ID (64 bytes; 8 on Turin) and REPORTED_TCB; raises
        VerifierError (collateral_missing) when it cannot be had.
    crl: the product's CRL (DER) issued by its ARK, or None when unavailable.
    """

    def vcek(self, product: str, hwid: bytes, tcb: Tcb) -> bytes: ...

    def crl(self, product: str) -> bytes | None: ...


@runtime_checkable
class EnrolledAkSource(Protocol):
    """`Options.tpm_enrolled_aks`: the AKs bound to an EK by credential activation (the broker's enrolment)."""

    def is_enrolled(self, ak_sha256: bytes) -> bool: ...


def _error(source: object, field: str, protocol: type, missing: str | None) -> SourceError:
    if source is None:
        return SourceError(missing or f"Options.{field} is not set, and the verification needs a {protocol.__name__}")
    return SourceError(f"Options.{field} is a {type(source).__name__}, expected a {protocol.__name__}")


# One checker per field: each narrows `source` to its protocol or raises SourceError (collateral_missing).


def tdx_collateral(source: object, missing: str | None = None) -> TdxCollateralSource:
    if isinstance(source, TdxCollateralSource):
        return source
    raise _error(source, "tdx_collateral", TdxCollateralSource, missing)


def snp_certificates(source: object, missing: str | None = None) -> SnpCertificateSource:
    if isinstance(source, SnpCertificateSource):
        return source
    raise _error(source, "snp_certificates", SnpCertificateSource, missing)


def tpm_enrolled_aks(source: object, missing: str | None = None) -> EnrolledAkSource:
    if isinstance(source, EnrolledAkSource):
        return source
    raise _error(source, "tpm_enrolled_aks", EnrolledAkSource, missing)
