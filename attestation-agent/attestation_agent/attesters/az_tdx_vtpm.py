"""Azure TDX confidential VMs (`az-tdx-vtpm`): the HCL report with the TDREPORT in it, the vTPM quote, and the TD
quote that Azure's IMDS makes from that TDREPORT (`POST /acc/tdquote {"report": base64url}` -> `{"quote":
base64url}`, as guest-components asks for it). The plumbing is `_azure`.

>>> from pathlib import Path
>>> probe(Path("/nonexistent")) is None or "VERITEE_TPM_TCTI" in __import__("os").environ
True
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from . import AttesterError
from ._azure import AzureVtpmAttester, probe_kind

__all__ = ["AzTdxVtpmAttester", "probe"]

QUOTE_PATH = "/acc/tdquote"
# The TDREPORT in the HCL report's hardware area (Intel TDX Module ABI TDREPORT_STRUCT, 1024 bytes).
TD_REPORT_OFFSET = 0x20
TD_REPORT_SIZE = 0x400
MAX_QUOTE = 128 * 1024


class AzTdxVtpmAttester(AzureVtpmAttester):
    tee = "az-tdx-vtpm"
    kind = "tdx"
    hardware_field = "td_quote"

    def _hardware(self, report: bytes) -> bytes:
        td_report = report[TD_REPORT_OFFSET : TD_REPORT_OFFSET + TD_REPORT_SIZE]
        body: dict[str, object] = {"report": base64.urlsafe_b64encode(td_report).decode().rstrip("=")}
        answer = self._imds("POST", QUOTE_PATH, body)
        encoded = answer.get("quote") if isinstance(answer, dict) else None
        if not isinstance(encoded, str):
            raise AttesterError("Azure IMDS answered no TD quote")
        try:
            quote = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (ValueError, binascii.Error) as exc:
            raise AttesterError(f"Azure IMDS TD quote is not base64url ({exc})") from exc
        if not quote or len(quote) > MAX_QUOTE:
            raise AttesterError(f"Azure IMDS returned a TD quote of {len(quote)} bytes")
        return quote


def probe(sysroot: Path) -> AzTdxVtpmAttester | None:
    found = probe_kind(sysroot)
    if found is None or found[1] != "tdx":
        return None
    return AzTdxVtpmAttester(found[0], sysroot=sysroot)
