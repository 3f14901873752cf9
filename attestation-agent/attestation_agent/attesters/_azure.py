"""What Azure confidential VMs (az-snp-vtpm, az-tdx-vtpm) share on the guest side: the vTPM that the paravisor
(HCL) provides, its NV indices, its AK, and Azure's instance metadata service (IMDS).

    NV 0x01400001   the HCL report (read with owner authorisation), refreshed by the paravisor
    NV 0x01400002   the report data the guest asks the paravisor to put in the report's runtime data
                    (`user-data`); defined by the guest when missing, sized to the report data
    0x81000003      the vTPM's attestation key (RSA, RSASSA-SHA256), provisioned by the paravisor
    PCR 8           init-data (SHA-256 bank; a fresh PCR 8 then reads SHA-256(32 zero bytes || digest))
    PCR 23          runtime events (CoCo AAEL): the application PCR a locality-0 guest may extend (PCR 17,
                    guest-components' default register elsewhere, needs locality 2 or more)

As guest-components' az-*-vtpm attesters do: write the report data, read the refreshed HCL report, quote all 24
SHA-256 PCRs with the AK and the whole report data as qualifyingData (extraData). The report is polled until its
runtime data carries the report data (guest-components sleeps 3 s instead); a paravisor that does not refresh it
in time yields version-1 evidence, which makes no promise about `user-data`.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import AttesterError
from .tpm import TpmAttester, _tss, has_handle, open_tpm

__all__ = [
    "AK_HANDLE",
    "HCL_REPORT_INDEX",
    "IMDS_ENV",
    "REPORT_DATA_INDEX",
    "AzureVtpmAttester",
    "hcl_report_type",
]

HCL_REPORT_INDEX = 0x01400001
REPORT_DATA_INDEX = 0x01400002
AK_HANDLE = 0x81000003
# TPM 2.0 Part 2 MAX_NV_BUFFER_SIZE of the reference implementation (Azure's vTPM and swtpm): a read's largest.
NV_CHUNK = 1024
PCR_COUNT = 24
MAX_REPORT_DATA = 64
# HCL report: "HCLA" at 0, the hardware report at 0x20, IGVM_REQUEST_DATA at 0x4C0 (report_type at +8,
# variable_data_size at +16), the runtime data at 0x4D4 (see verifier.azure._hcl).
HCL_SIGNATURE = b"HCLA"
OFF_REPORT_TYPE = 0x4C8
OFF_VARIABLE_SIZE = 0x4D0
OFF_RUNTIME_DATA = 0x4D4
REPORT_TYPES = {2: "snp", 4: "tdx"}
IMDS_ENV = "VERITEE_AZURE_IMDS_URL"
IMDS_URL = "http://169.254.169.254"
REFRESH_ENV = "VERITEE_AZURE_HCL_WAIT"
REFRESH_SECONDS = 3.0
POLL_SECONDS = 0.1
EVIDENCE_VERSION = 2
IMDS_TIMEOUT = 10.0
MAX_IMDS_RESPONSE = 1024 * 1024


def hcl_report_type(report: bytes) -> str | None:
    """ "snp" or "tdx" for an HCL report of that type, None for anything else."""
    if report[:4] != HCL_SIGNATURE or len(report) < OFF_RUNTIME_DATA:
        return None
    return REPORT_TYPES.get(int.from_bytes(report[OFF_REPORT_TYPE : OFF_REPORT_TYPE + 4], "little"))


def _user_data(report: bytes) -> bytes | None:
    """The runtime data's user-data, or None when the report has none readable."""
    size = int.from_bytes(report[OFF_VARIABLE_SIZE : OFF_VARIABLE_SIZE + 4], "little")
    try:
        document = json.loads(report[OFF_RUNTIME_DATA : OFF_RUNTIME_DATA + size])
        return bytes.fromhex(document["user-data"])
    except (ValueError, TypeError, KeyError):
        return None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()  # padded, as serde_with's Base64<UrlSafe> writes it


def read_nv(esapi: Any, index: int) -> bytes:
    """The whole NV index, read with owner authorisation in chunks of at most NV_CHUNK bytes."""
    tss = _tss()
    handle = esapi.tr_from_tpmpublic(index)
    public, _ = esapi.nv_read_public(handle)
    size = public.nvPublic.dataSize
    out = b""
    while len(out) < size:
        chunk = min(NV_CHUNK, size - len(out))
        out += bytes(esapi.nv_read(handle, chunk, len(out), auth_handle=tss.ESYS_TR.OWNER))
    return out


def read_hcl_report(tcti: str) -> bytes | None:
    """The HCL report, or None when this TPM has no such NV index (not an Azure CVM)."""
    with open_tpm(tcti) as esapi:
        if not has_handle(esapi, HCL_REPORT_INDEX):
            return None
        return read_nv(esapi, HCL_REPORT_INDEX)


class AzureVtpmAttester(TpmAttester):
    """A TPM attester whose evidence is the Azure shape: the HCL report, the vTPM quote with the paravisor's AK,
    and the hardware piece (`_hardware`: the VCEK for SNP, the TD quote for TDX) from IMDS. Init-data goes to
    PCR 8 as on any TPM (TpmAttester.bind_init_data)."""

    tee = "azure"
    kind = ""  # the HCL report type: "snp" | "tdx"
    hardware_field = ""  # the evidence field of the hardware piece: "vcek" | "td_quote"

    def __init__(self, tcti: str, *, sysroot: Path = Path("/"), imds_url: str | None = None) -> None:
        super().__init__(tcti, sysroot=sysroot, ak_handle=AK_HANDLE, pcrs=range(PCR_COUNT))
        self.imds_url = (imds_url or os.environ.get(IMDS_ENV) or IMDS_URL).rstrip("/")
        self.refresh_seconds = float(os.environ.get(REFRESH_ENV, REFRESH_SECONDS))

    # ---- the vTPM ----

    def _ak(self, esapi: Any) -> Any:
        """The paravisor's AK; never created here (an AK of our own would not be in the HCL report)."""
        found = self._persistent_ak(esapi)
        if found is None:
            raise AttesterError(f"no vTPM attestation key at {AK_HANDLE:#x}: is this an Azure confidential VM?")
        return found

    def _write_report_data(self, esapi: Any, report_data: bytes) -> None:
        """NV 0x01400002 := report_data, defining the index (owner read/write, its size) when missing or sized
        otherwise, as guest-components does."""
        tss = _tss()
        if has_handle(esapi, REPORT_DATA_INDEX):
            handle = esapi.tr_from_tpmpublic(REPORT_DATA_INDEX)
            public, _ = esapi.nv_read_public(handle)
            if public.nvPublic.dataSize == len(report_data):
                esapi.nv_write(handle, report_data, 0, auth_handle=tss.ESYS_TR.OWNER)
                return
            esapi.nv_undefine_space(handle, auth_handle=tss.ESYS_TR.OWNER)
        public = tss.TPM2B_NV_PUBLIC(
            nvPublic=tss.TPMS_NV_PUBLIC(
                nvIndex=REPORT_DATA_INDEX,
                nameAlg=tss.TPM2_ALG.SHA256,
                attributes=tss.TPMA_NV.OWNERWRITE | tss.TPMA_NV.OWNERREAD,
                dataSize=len(report_data),
            )
        )
        handle = esapi.nv_define_space(b"", public, auth_handle=tss.ESYS_TR.OWNER)
        esapi.nv_write(handle, report_data, 0, auth_handle=tss.ESYS_TR.OWNER)

    def _fresh_report(self, esapi: Any, report_data: bytes) -> tuple[bytes, bool]:
        """The HCL report after the paravisor put report_data in its user-data (True), or the last one read when
        it has not within refresh_seconds (False)."""
        deadline = time.monotonic() + self.refresh_seconds
        while True:
            report = read_nv(esapi, HCL_REPORT_INDEX)
            user_data = _user_data(report)
            if user_data is not None and user_data[: len(report_data)] == report_data:
                return report, True
            if time.monotonic() >= deadline:
                return report, False
            time.sleep(POLL_SECONDS)

    def _tpm_quote(self, esapi: Any, report_data: bytes) -> dict[str, object]:
        """The quote of SHA-256 PCRs 0-23 with qualifyingData = report_data, in Azure's shape: hex fields, the
        bare RSASSA signature, the PCRs as a list."""
        quote = self._quote(esapi, self.pcrs, report_data)
        if quote.signature.sigAlg != _tss().TPM2_ALG.RSASSA:
            raise AttesterError(f"the vTPM AK signed with algorithm {quote.signature.sigAlg:#x}, expected RSASSA")
        return {
            "signature": bytes(quote.signature.signature.rsassa.sig).hex(),
            "message": quote.attest.hex(),
            "pcrs": [quote.pcrs[str(i)] for i in self.pcrs],
        }

    # ---- IMDS ----

    def _imds(self, method: str, path: str, body: dict[str, object] | None = None) -> Any:
        """One JSON request to IMDS (plain HTTP to a link-local address: never through a proxy, so the standard
        library's client rather than the agent's broker client); AttesterError on any failure."""
        url = urlsplit(self.imds_url)
        headers = {"Metadata": "true", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        connection = http.client.HTTPConnection(url.hostname or "", url.port or 80, timeout=IMDS_TIMEOUT)
        try:
            connection.request(method, url.path.rstrip("/") + path, body=data, headers=headers)
            response = connection.getresponse()
            payload = response.read(MAX_IMDS_RESPONSE + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise AttesterError(f"Azure IMDS at {self.imds_url} is not reachable: {exc}") from exc
        finally:
            connection.close()
        if response.status != 200 or len(payload) > MAX_IMDS_RESPONSE:
            raise AttesterError(f"Azure IMDS {method} {path} answered {response.status} ({len(payload)} bytes)")
        try:
            return json.loads(payload)
        except ValueError as exc:
            raise AttesterError(f"Azure IMDS {method} {path} answered something other than JSON") from exc

    def _hardware(self, report: bytes) -> bytes:
        raise NotImplementedError

    # ---- the Attester protocol ----

    def evidence(self, report_data: bytes) -> dict[str, object]:
        """The az-*-vtpm evidence (version 2, or 1 when the report does not carry the report data)."""
        if not 0 < len(report_data) <= MAX_REPORT_DATA:
            raise AttesterError(f"report data is {len(report_data)} bytes, expected 1 to {MAX_REPORT_DATA}")
        with self._esapi() as esapi:
            self._write_report_data(esapi, report_data)
            report, fresh = self._fresh_report(esapi, report_data)
            quote = self._tpm_quote(esapi, report_data)
        if hcl_report_type(report) != self.kind:
            raise AttesterError(f"the HCL report is not of type {self.kind.upper()}")
        return {
            "version": EVIDENCE_VERSION if fresh else 1,
            "tpm_quote": quote,
            "hcl_report": _b64url(report),
            self.hardware_field: _b64url(self._hardware(report)),
        }


def probe_kind(sysroot: Path) -> tuple[str, str] | None:
    """(TCTI, HCL report type) when the TPM that `tpm.probe` would use holds an HCL report, else None."""
    from .tpm import probe  # noqa: PLC0415 - the TPM attester finds the device (TCTI or /dev nodes)

    found = probe(sysroot)
    if found is None:
        return None
    try:
        report = read_hcl_report(found.tcti)
    except AttesterError:
        return None
    kind = None if report is None else hcl_report_type(report)
    return None if kind is None else (found.tcti, kind)
