"""Evidence collection, one module per TEE.

Each module `attestation_agent.attesters.<tee>` exposes `probe(sysroot: Path) -> Attester | None`, which looks
for its device under `sysroot` (the real root "/" in a guest; a fake device tree in tests) and returns an
attester when the TEE is present (module names spell the TEE with underscores: `az_snp_vtpm`). Detection tries
TDX, then SNP, then the Azure confidential VMs (a vTPM holding an HCL report: they must come before the plain
TPM, which they also are), then TPM; the sample attester is the fallback, used only when nothing else is found
(with a warning from the CLI). A TEE's module is imported only once a cheap look for its device (PRESENCE_HINTS)
found something, so the agent's start-up pays for one attester at most.

>>> from pathlib import Path
>>> attester = detect(Path("/nonexistent"))
>>> attester.tee
'sample'
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..aael import RuntimeLog

__all__ = ["Attester", "AttesterError", "detect", "get", "runtime_log"]

DETECTION_ORDER = ("tdx", "snp", "az-snp-vtpm", "az-tdx-vtpm", "tpm")
SYSROOT_ENV = "VERITEE_SYSROOT"
# TEE -> (paths under the sysroot, environment variables): the TEE module's probe can only succeed when one of
# them exists; a necessary condition, never a sufficient one. A TEE without an entry is always probed.
PRESENCE_HINTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "tdx": (("sys/class/misc/tdx_guest", "dev/tdx_guest"), ()),
    "snp": (("dev/sev-guest",), ()),
    "tpm": (("dev/tpmrm0", "dev/tpm0"), ("VERITEE_TPM_TCTI",)),
}
# An Azure confidential VM is attested through its vTPM: it needs what the TPM needs.
PRESENCE_HINTS["az-snp-vtpm"] = PRESENCE_HINTS["az-tdx-vtpm"] = PRESENCE_HINTS["tpm"]


class AttesterError(Exception):
    """The TEE device is there but evidence could not be collected (a clear, operational error)."""


class Attester(Protocol):
    tee: str

    def evidence(self, report_data: bytes) -> dict[str, object]:
        """The evidence JSON of docs/evidence.md bound to report_data (at most 64 bytes)."""
        ...

    def bind_init_data(self, digest: bytes) -> None:
        """Bind the init-data digest where the guest itself must do it (the TPM extends PCR8); TEEs whose
        field is set at launch (TDX MRCONFIGID, SNP HOST_DATA) do nothing."""
        ...


def runtime_log(attester: Attester) -> RuntimeLog:
    """The TEE's runtime-measurement log (CoCo AAEL); AttesterError when the TEE has no runtime register."""
    make = getattr(attester, "runtime_log", None)
    if make is None:
        raise AttesterError(f"the {attester.tee} TEE has no runtime measurement register (TDX RTMR3, TPM PCR 23)")
    log: RuntimeLog = make()
    return log


def sysroot() -> Path:
    return Path(os.environ.get(SYSROOT_ENV, "/"))


def _may_be_present(tee: str, root: Path) -> bool:
    hints = PRESENCE_HINTS.get(tee)
    if hints is None:
        return True
    paths, variables = hints
    return any(os.environ.get(v) for v in variables) or any((root / p).exists() for p in paths)


def _probe(tee: str, root: Path) -> Attester | None:
    if not _may_be_present(tee, root):
        return None
    try:
        module = importlib.import_module(f"attestation_agent.attesters.{tee.replace('-', '_')}")
    except ModuleNotFoundError:
        return None
    probe = getattr(module, "probe", None)
    if probe is None:
        return None
    found: Attester | None = probe(root)
    return found


def detect(root: Path | None = None) -> Attester:
    """The first TEE found under root, else the sample attester."""
    root = sysroot() if root is None else root
    for tee in DETECTION_ORDER:
        found = _probe(tee, root)
        if found is not None:
            return found
    from .sample import SampleAttester  # noqa: PLC0415

    return SampleAttester()


def get(tee: str, root: Path | None = None) -> Attester:
    """The attester for a named TEE; AttesterError when that TEE is not present."""
    if tee == "sample":
        from .sample import SampleAttester  # noqa: PLC0415

        return SampleAttester()
    if tee not in DETECTION_ORDER:
        raise AttesterError(f"unknown TEE {tee!r}; expected one of {[*DETECTION_ORDER, 'sample']}")
    found = _probe(tee, sysroot() if root is None else root)
    if found is None:
        raise AttesterError(f"TEE {tee!r} not found on this machine")
    return found
