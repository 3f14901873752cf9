"""The TEEs the verifier knows: one line each in TEES, and what each declares in its own package.

Each TEE's module (its package's `__init__`) declares a `TEE = Tee(...)`: its verification pipeline, how the
runtime digest and the init-data digest of the KBS protocol bind into its evidence (docs/protocol.md), which
collateral sources of `Options` it reads, and its shipped default attestation policy. The broker, the agent and
the CLI ask the registry; nothing else lists TEEs. An unknown TEE is `unsupported_format` everywhere: there is
no default binding for it.

>>> expected_report_data("tpm", bytes(range(48))) == bytes(range(32))
True
>>> expected_report_data("ternary", bytes(48))
Traceback (most recent call last):
...
verifier.errors.FormatError: unsupported_format: tee is 'ternary', expected one of [...]
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import FormatError, Reason

if TYPE_CHECKING:
    from .options import Options
    from .result import Verified

__all__ = ["DEVICE_TEES", "TEES", "Tee", "expected_init_data", "expected_report_data", "lookup"]

# One line per TEE: its name on the wire (KBS protocol `tee`) -> the module whose `TEE` declares it.
TEES: dict[str, str] = {
    "sample": "verifier.sample",
    "tpm": "verifier.tpm",
    "snp": "verifier.snp",
    "tdx": "verifier.tdx",
    "az-snp-vtpm": "verifier.az_snp_vtpm",
    "az-tdx-vtpm": "verifier.az_tdx_vtpm",
    "sampledevice": "verifier.sampledevice",
}

# The device TEEs among them (class other than `cpu`): sent in `additional_evidence`, never as primary evidence.
# Kept here beside TEES so that the broker can refuse a device at /auth without importing every TEE's module.
DEVICE_TEES: dict[str, str] = {"sampledevice": "gpu"}


@dataclass(frozen=True)
class Tee:
    """What a TEE declares in its own package.

    name: its name in TEES and on the wire.
    verify: parse and verify evidence (a parsed JSON object or raw bytes) -> Verified; VerifierError otherwise.
    report_data: the runtime digest (SHA-384 of the JCS runtime data, 48 bytes) -> the exact value of the
        evidence's report-data field that binds it (REPORTDATA, REPORT_DATA, extraData, ...).
    init_data: the init-data digest -> the exact value of the evidence's init-data field (MRCONFIGID, HOST_DATA,
        PCR8, ...); None when the TEE has no init-data binding.
    sources: the `Options` collateral fields it reads (the rest it ignores).
    default_policy: its shipped attestation policy (a file of the `policies` package, id `default_<name>`).
    tee_class: `cpu` for a TEE that sends primary evidence; a device's class (`gpu`) otherwise, as trustee's EAR
        broker names them: it selects the `default_<class>` attestation policy and names the EAR submods
        `<class>0`, `<class>1`, ... (a device class must match DEVICE_TEES).
    """

    name: str
    verify: Callable[[Mapping[str, object] | bytes, Options], Verified]
    report_data: Callable[[bytes], bytes]
    init_data: Callable[[bytes], bytes] | None
    sources: tuple[str, ...]
    default_policy: str
    tee_class: str = "cpu"


# Name -> declaration, once its module is imported (a verification pays one dict look-up).
_LOADED: dict[str, Tee] = {}


def lookup(name: str) -> Tee:
    """The declaration of a TEE; FormatError (unsupported_format) when it is not in TEES or not installed."""
    found = _LOADED.get(name)
    if found is not None:
        return found
    module_name = TEES.get(name)
    if module_name is None:
        raise FormatError(f"tee is {name!r}, expected one of {sorted(TEES)}", Reason.UNSUPPORTED_FORMAT)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise FormatError(f"tee {name!r} is not available in this build", Reason.UNSUPPORTED_FORMAT) from exc
    declared = getattr(module, "TEE", None)
    if not isinstance(declared, Tee) or declared.name != name:
        raise TypeError(f"{module_name}.TEE is {declared!r}, expected the Tee declaration of {name!r}")
    if declared.tee_class != DEVICE_TEES.get(name, "cpu"):
        raise TypeError(f"{module_name}.TEE declares class {declared.tee_class!r}, DEVICE_TEES says otherwise")
    _LOADED[name] = declared
    return declared


def expected_report_data(tee: str, runtime_digest: bytes) -> bytes:
    """The exact report-data value that evidence of `tee` must carry for this runtime digest."""
    return lookup(tee).report_data(runtime_digest)


def expected_init_data(tee: str, init_data_digest: bytes) -> bytes | None:
    """The exact value of `tee`'s init-data field for this init-data digest; None when it has none."""
    rule = lookup(tee).init_data
    return None if rule is None else rule(init_data_digest)
