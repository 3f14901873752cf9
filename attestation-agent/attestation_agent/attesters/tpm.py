"""The TPM 2.0 attester, on tpm2-pytss (ESAPI): quote, PCRs, AK/EK, event log, init-data binding, enrolment.

Device: `$VERITEE_TPM_TCTI` (a TCTI string such as `swtpm:host=127.0.0.1,port=2321`), else
`<sysroot>/dev/tpmrm0`, else `<sysroot>/dev/tpm0`. The AK is a restricted signing key (RSA-2048 RSASSA-SHA256,
or ECC P-256 ECDSA) created under the EK (TCG EK Credential Profile 2.5 template L-1, RSA 2048; L-2, ECC P-256
as an option) and persisted at `ak_handle` (default 0x81010002), so the same AK is reused across boots and is
enrolled once. Every transient object and session is flushed before the context closes: a TPM without a
resource manager (swtpm, /dev/tpm0) keeps them otherwise.

>>> from pathlib import Path
>>> probe(Path("/nonexistent")) is None or "VERITEE_TPM_TCTI" in __import__("os").environ
True
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any, NamedTuple

from ..aael import LOG_PATH, Bank, RuntimeLog, spec_id_header
from . import AttesterError

__all__ = [
    "DEFAULT_AK_HANDLE",
    "DEFAULT_PCRS",
    "TCTI_ENV",
    "Quote",
    "TpmAttester",
    "has_handle",
    "open_tpm",
    "probe",
]

TCTI_ENV = "VERITEE_TPM_TCTI"
AK_HANDLE_ENV = "VERITEE_TPM_AK_HANDLE"
AK_TYPE_ENV = "VERITEE_TPM_AK_TYPE"
DEFAULT_AK_HANDLE = 0x81010002
DEFAULT_PCRS = tuple(range(16))
DEVICES = ("dev/tpmrm0", "dev/tpm0")
EVENT_LOG = "sys/kernel/security/tpm0/binary_bios_measurements"
# docs/protocol.md (binding): extraData is the first 32 bytes of the runtime digest; init-data goes to PCR8 (SHA-256).
EXTRA_DATA_SIZE = 32
INIT_DATA_PCR = 8
SHA256_SIZE = 32
# TCG EK Credential Profile 2.5 §2.2.1.5: NV indices of the EK certificates of templates L-1 and L-2.
EK_TEMPLATES = {"rsa": ("EK-RSA2048", 0x01C00002), "ecc": ("EK-ECC256", 0x01C0000A)}
# TPM2_PCR_Read returns at most 8 digests per call (Part 3 §22.4: TPML_DIGEST holds 8).
PCR_READ_BATCH = 8
AK_TYPES = {"rsa": "rsa2048:rsassa-sha256:null", "ecc": "ecc256:ecdsa-sha256:null"}
# Runtime events (CoCo AAEL). guest-components' default register is "PCR 17", which it maps to RTMR3 on TDX; on
# a TPM, PCR 17 (a DRTM PCR) can be extended only from localities 2-4 (PC Client PTP, PCR attributes), and Linux
# gives userspace locality 0. So the TPM default is PCR 23, the application PCR extendable at locality 0 (the
# register guest-components uses on Azure's vTPM); VERITEE_TPM_AAEL_PCR chooses another.
AAEL_PCR_ENV = "VERITEE_TPM_AAEL_PCR"
DEFAULT_AAEL_PCR = 23
_SPEC_ID_BANKS = {0x0004: "sha1", 0x000B: "sha256", 0x000C: "sha384", 0x000D: "sha512"}


def _tss() -> Any:
    # tpm2-tss logs expected failures (probing absent NV indices) to stderr unless told otherwise.
    os.environ.setdefault("TSS2_LOG", "all+none")
    try:
        import tpm2_pytss  # noqa: PLC0415 - optional dependency (extra "tpm"), only where a TPM is used
    except ImportError as exc:
        raise AttesterError(
            "the TPM attester needs tpm2-pytss (pip install 'veritee[tpm]') and libtss2 (apt libtss2-dev)"
        ) from exc
    return tpm2_pytss


@contextmanager
def open_tpm(tcti: str) -> Iterator[Any]:
    """An ESAPI context on the TPM reached through `tcti`, closed on the way out; AttesterError when it cannot be
    opened or a command fails."""
    tss = _tss()
    try:
        esapi = tss.ESAPI(tcti)
    except tss.TSS2_Exception as exc:
        raise AttesterError(f"cannot open the TPM through TCTI {tcti!r}: {exc}") from exc
    try:
        yield esapi
    except tss.TSS2_Exception as exc:
        raise AttesterError(f"TPM command failed: {exc}") from exc
    finally:
        esapi.close()


def has_handle(esapi: Any, handle: int) -> bool:
    """Whether the TPM holds that persistent object or NV index."""
    _, data = esapi.get_capability(_tss().TPM2_CAP.HANDLES, handle, 1)
    handles = list(data.data.handles)
    return bool(handles) and handles[0] == handle


class Quote(NamedTuple):
    """A quote as the TPM made it: the AK's ESYS handle, the TPMS_ATTEST bytes, the TPMT_SIGNATURE, and the
    quoted SHA-256 PCRs read right after (index as a string -> hex)."""

    ak: Any
    attest: bytes
    signature: Any
    pcrs: dict[str, str]


class TpmAttester:
    """Evidence from a TPM reached through `tcti` (a tpm2-tss TCTI string)."""

    tee = "tpm"

    def __init__(
        self,
        tcti: str,
        *,
        sysroot: Path = Path("/"),
        ak_handle: int = DEFAULT_AK_HANDLE,
        ak_type: str = "rsa",
        ek_type: str = "rsa",
        pcrs: Sequence[int] = DEFAULT_PCRS,
    ) -> None:
        if ak_type not in AK_TYPES:
            raise AttesterError(f"AK type is {ak_type!r}, expected one of {sorted(AK_TYPES)}")
        if ek_type not in EK_TEMPLATES:
            raise AttesterError(f"EK type is {ek_type!r}, expected one of {sorted(EK_TEMPLATES)}")
        self.ek_type = ek_type
        self.tcti = tcti
        self.sysroot = sysroot
        self.ak_handle = ak_handle
        self.ak_type = ak_type
        self.pcrs = tuple(pcrs)
        self.aael_pcr = int(os.environ.get(AAEL_PCR_ENV, DEFAULT_AAEL_PCR))

    # ---- plumbing ----

    def _esapi(self) -> AbstractContextManager[Any]:
        return open_tpm(self.tcti)

    @contextmanager
    def _transient(self, esapi: Any, handle: Any) -> Iterator[Any]:
        """A transient object or session, flushed on the way out whatever happens."""
        try:
            yield handle
        finally:
            with suppress(_tss().TSS2_Exception):
                esapi.flush_context(handle)

    def _ek(self, esapi: Any) -> tuple[Any, bytes | None, Any]:
        """The EK from its standard template (a transient primary): its handle, certificate, public area."""
        tss = _tss()
        from tpm2_pytss.utils import NVReadEK, create_ek_template  # noqa: PLC0415

        name, _ = EK_TEMPLATES[self.ek_type]
        cert, template = create_ek_template(name, NVReadEK(esapi))
        handle, public, *_ = esapi.create_primary(None, template, tss.ESYS_TR.ENDORSEMENT)
        return handle, (bytes(cert) if cert else None), public

    def _ek_session(self, esapi: Any) -> Any:
        """A session meeting the EK's authPolicy, PolicySecret(TPM_RH_ENDORSEMENT) (EK profile §B.3.3)."""
        tss = _tss()
        session = esapi.start_auth_session(
            tss.ESYS_TR.NONE,
            tss.ESYS_TR.NONE,
            tss.TPM2_SE.POLICY,
            tss.TPMT_SYM_DEF(algorithm=tss.TPM2_ALG.NULL),
            tss.TPM2_ALG.SHA256,
        )
        esapi.policy_secret(tss.ESYS_TR.ENDORSEMENT, session, b"", b"", b"", 0)
        return session

    def _persistent_ak(self, esapi: Any) -> Any | None:
        return esapi.tr_from_tpmpublic(self.ak_handle) if has_handle(esapi, self.ak_handle) else None

    def _ak(self, esapi: Any) -> Any:
        """The AK at its persistent handle, created under the EK and persisted the first time."""
        found = self._persistent_ak(esapi)
        if found is not None:
            return found
        tss = _tss()
        attributes = (
            tss.TPMA_OBJECT.RESTRICTED
            | tss.TPMA_OBJECT.SIGN_ENCRYPT
            | tss.TPMA_OBJECT.FIXEDTPM
            | tss.TPMA_OBJECT.FIXEDPARENT
            | tss.TPMA_OBJECT.SENSITIVEDATAORIGIN
            | tss.TPMA_OBJECT.USERWITHAUTH
        )
        template = tss.TPM2B_PUBLIC.parse(AK_TYPES[self.ak_type], objectAttributes=attributes)
        ek, _, _ = self._ek(esapi)
        with self._transient(esapi, ek):
            with self._transient(esapi, self._ek_session(esapi)) as session:
                private, public, *_ = esapi.create(ek, None, template, session1=session)
            with self._transient(esapi, self._ek_session(esapi)) as session:
                loaded = esapi.load(ek, private, public, session1=session)
            with self._transient(esapi, loaded):
                return esapi.evict_control(tss.ESYS_TR.OWNER, loaded, self.ak_handle)

    def _pcr_values(self, esapi: Any, pcrs: Sequence[int]) -> dict[str, str]:
        values: dict[str, str] = {}
        for start in range(0, len(pcrs), PCR_READ_BATCH):
            batch = pcrs[start : start + PCR_READ_BATCH]
            _, selection, digests = esapi.pcr_read(f"sha256:{','.join(map(str, batch))}")
            read = [i for s in selection for i in _selected(s)]
            for index, digest in zip(read, digests, strict=True):
                values[str(index)] = bytes(digest).hex()
        missing = [i for i in pcrs if str(i) not in values]
        if missing:
            raise AttesterError(f"TPM did not return SHA-256 PCRs {missing}: is the SHA-256 bank active?")
        return values

    def _quote(self, esapi: Any, pcrs: Sequence[int], qualifying_data: bytes) -> Quote:
        """TPM2_Quote of the SHA-256 PCRs `pcrs` with the AK (in the AK's own signing scheme) and qualifyingData
        (the quote's extraData), then those PCRs read."""
        tss = _tss()
        ak = self._ak(esapi)
        attest, signature = esapi.quote(
            ak,
            f"sha256:{','.join(map(str, pcrs))}",
            qualifying_data,
            tss.TPMT_SIG_SCHEME(scheme=tss.TPM2_ALG.NULL),
        )
        return Quote(ak, bytes(attest), signature, self._pcr_values(esapi, pcrs))

    # ---- the Attester protocol ----

    def pcr(self, index: int) -> bytes:
        """The SHA-256 bank's PCR `index`."""
        with self._esapi() as esapi:
            return bytes.fromhex(self._pcr_values(esapi, (index,))[str(index)])

    # ---- runtime events (CoCo AAEL) ----

    def _log_banks(self, firmware_log: bytes | None) -> tuple[Bank, ...]:
        """The banks of the firmware log's Spec ID event (each appended record must carry all of them), else
        SHA-256 alone. PFP 10.4.5.1: the table starts at offset 32 + 24 of the first event's data."""
        if not firmware_log:
            return (Bank("sha256"),)
        data = firmware_log[32:]  # pcrIndex, eventType, SHA-1 digest, eventSize
        count = int.from_bytes(data[24:28], "little")
        ids = [int.from_bytes(data[28 + 4 * i : 30 + 4 * i], "little") for i in range(count)]
        banks = tuple(Bank(_SPEC_ID_BANKS[i]) for i in ids if i in _SPEC_ID_BANKS)
        if not banks or len(banks) != count:
            raise AttesterError(f"the firmware event log's Spec ID lists algorithms {ids}: cannot add runtime events")
        return banks

    def runtime_log(self) -> RuntimeLog:
        """The AAEL: records for PCR `aael_pcr` in the banks of the firmware log (SHA-256 without one)."""
        return RuntimeLog(
            self.sysroot / LOG_PATH, self.aael_pcr, self.aael_pcr, self._log_banks(self._event_log()), self._extend
        )

    def _extend(self, pcr: int, digests: dict[str, bytes]) -> None:
        tss = _tss()
        values = [
            tss.TPMT_HA(hashAlg=getattr(tss.TPM2_ALG, bank.upper()), digest=tss.TPMU_HA(**{bank: digest}))
            for bank, digest in digests.items()
        ]
        with self._esapi() as esapi:
            esapi.pcr_extend(
                getattr(tss.ESYS_TR, f"PCR{pcr}"), tss.TPML_DIGEST_VALUES(values), session1=tss.ESYS_TR.PASSWORD
            )

    def evidence(self, report_data: bytes) -> dict[str, object]:
        """TPM evidence (docs/evidence.md); extraData is the first 32 bytes of report_data (docs/protocol.md).
        With runtime events, their PCR is quoted too and their records follow the firmware log's."""
        extra_data = report_data[:EXTRA_DATA_SIZE]
        firmware_log = self._event_log()
        runtime = self.runtime_log().records()
        quoted = self.pcrs if not runtime or self.aael_pcr in self.pcrs else (*self.pcrs, self.aael_pcr)
        with self._esapi() as esapi:
            quote = self._quote(esapi, quoted, extra_data)
            ak_public, _, _ = esapi.read_public(quote.ak)
            ek_certificate = self._ek_certificate(esapi)
        document: dict[str, object] = {
            "tpm_quote": {
                "message": _b64(quote.attest),
                "signature": _b64(quote.signature.marshal()),
                "pcrs": {"sha256": quote.pcrs},
            },
            "ak_public": _b64(ak_public.publicArea.to_der()),
        }
        if ek_certificate:
            document["ek_certificate"] = _b64(ek_certificate)
        event_log = firmware_log
        if runtime:
            event_log = (firmware_log or spec_id_header(self._log_banks(None))) + runtime
        if event_log:
            document["event_log"] = _b64(event_log)
        return document

    def bind_init_data(self, digest: bytes) -> None:
        """Extend PCR8 (SHA-256 bank) with the init-data digest, so that a fresh PCR8 reads
        SHA-256(32 zero bytes || digest) (docs/protocol.md, as trustee and guest-components do). TPM2_PCR_Extend
        takes a digest of the bank's size, so only a SHA-256 init-data digest can be bound."""
        if len(digest) != SHA256_SIZE:
            raise AttesterError(
                f"init-data digest is {len(digest)} bytes; the TPM binds only SHA-256 init-data "
                '(set algorithm = "sha256" in the init-data TOML)'
            )
        tss = _tss()
        with self._esapi() as esapi:
            values = tss.TPML_DIGEST_VALUES(
                [tss.TPMT_HA(hashAlg=tss.TPM2_ALG.SHA256, digest=tss.TPMU_HA(sha256=digest))]
            )
            esapi.pcr_extend(tss.ESYS_TR.PCR8, values, session1=tss.ESYS_TR.PASSWORD)

    # ---- enrolment (credential activation) ----

    def ak_tpmt_public(self) -> bytes:
        """The AK's marshalled TPMT_PUBLIC (its name is nameAlg || H(this))."""
        with self._esapi() as esapi:
            public, _, _ = esapi.read_public(self._ak(esapi))
            return bytes(public.publicArea.marshal())

    def ek(self) -> tuple[bytes, bytes | None]:
        """The EK's marshalled TPMT_PUBLIC and its certificate from NV (None when the TPM has none)."""
        with self._esapi() as esapi:
            handle, cert, public = self._ek(esapi)
            with self._transient(esapi, handle):
                return bytes(public.publicArea.marshal()), cert

    def activate_credential(self, credential_blob: bytes, encrypted_secret: bytes) -> bytes:
        """TPM2_ActivateCredential with the AK (activateHandle) and the EK (keyHandle): the secret that the
        broker's TPM2_MakeCredential protected, recovered only if the AK lives in the EK's TPM."""
        tss = _tss()
        with self._esapi() as esapi:
            ak = self._ak(esapi)
            ek, _, _ = self._ek(esapi)
            with self._transient(esapi, ek), self._transient(esapi, self._ek_session(esapi)) as session:
                secret = esapi.activate_credential(
                    ak,
                    ek,
                    tss.TPM2B_ID_OBJECT(credential_blob),
                    tss.TPM2B_ENCRYPTED_SECRET(encrypted_secret),
                    session1=tss.ESYS_TR.PASSWORD,
                    session2=session,
                )
            return bytes(secret)

    def _ek_certificate(self, esapi: Any) -> bytes | None:
        from tpm2_pytss.utils import NoSuchIndex, NVReadEK  # noqa: PLC0415

        _, index = EK_TEMPLATES[self.ek_type]
        try:
            return bytes(NVReadEK(esapi)(index)) or None
        except NoSuchIndex:
            return None

    def _event_log(self) -> bytes | None:
        path = self.sysroot / EVENT_LOG
        try:
            return path.read_bytes()
        except OSError:
            return None


def _selected(selection: Any) -> list[int]:
    return [8 * j + i for j in range(selection.sizeofSelect) for i in range(8) if selection.pcrSelect[j] >> i & 1]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def probe(sysroot: Path) -> TpmAttester | None:
    """A TPM attester when a TCTI is configured or a TPM device node exists under sysroot."""
    options: dict[str, Any] = {"sysroot": sysroot}
    if AK_HANDLE_ENV in os.environ:
        options["ak_handle"] = int(os.environ[AK_HANDLE_ENV], 0)
    if AK_TYPE_ENV in os.environ:
        options["ak_type"] = os.environ[AK_TYPE_ENV]
    tcti = os.environ.get(TCTI_ENV)
    if tcti:
        return TpmAttester(tcti, **options)
    for device in DEVICES:
        path = sysroot / device
        if path.exists():
            return TpmAttester(f"device:{path}", **options)
    return None
