"""Reference values computed from artefacts of a reference boot, named as the shipped policies query them.

- SNP: the launch MEASUREMENT of a guest booted with an OVMF build (and, with an AmdSev build, a measured direct
  boot of kernel/initrd/cmdline), computed by sev-snp-measure (virtee) as a library -> `snp_measurement`.
- TDX: RTMR[0..3] replayed from the CC event log (CCEL) of a reference boot -> `tdx_rtmr0`..`tdx_rtmr3`, for the
  registers the log extends. MRTD is not in the log (the TDX module builds it from the initial TD memory before
  the firmware runs), so it is read from a quote of the same reference boot -> `tdx_mr_td`; with both, the
  quote's RTMRs must equal the log's replay, which proves the two are of the same boot.
- TPM: the SHA-256 bank of the PCRs that a TCG2 event log extends -> `tpm_pcr0`..`tpm_pcr23`.

    >>> from pathlib import Path
    >>> log = Path(__file__).parents[1] / "tests/vectors/tpm/go-tpm-tools/rhel8-uefi.bin"
    >>> derive_tpm(log.read_bytes(), pcrs=[7])
    {'tpm_pcr7': '5fd54361d580eb7592adb8deb236ff35444ceeac7148f24b3de63c041f12b3da'}

Every failure is a DeriveError naming the artefact, what was found and what was expected; nothing here talks to
the broker.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from verifier import eventlog
from verifier.errors import VerifierError
from verifier.tdx import parse_quote

__all__ = ["DeriveError", "DeriveUsageError", "SnpLaunch", "derive_snp", "derive_tdx", "derive_tpm"]

# The bank the shipped TPM policy compares (policies/tpm.rego reads input.tpm.pcrs.sha256).
TPM_BANK = "sha256"
TPM_PCR_COUNT = 24
# An OVMF image is mapped page by page below 4 GiB; real builds are 2 or 4 MiB. The cap keeps a wrong file
# (a disk image, say) from being read whole.
PAGE_SIZE = 4096
MAX_OVMF_SIZE = 16 * 1024 * 1024
VMM_TYPES = ("QEMU", "ec2", "gce")


class DeriveError(Exception):
    """An artefact that cannot give the asked reference value (exit 1)."""


class DeriveUsageError(DeriveError):
    """Options that do not fit together (exit 2)."""


@dataclass(frozen=True)
class SnpLaunch:
    """What sev-snp-measure's `--mode snp` takes: the firmware, the direct-boot artefacts, the vCPUs and the VMM.

    vcpu_type is one of sev-snp-measure's CPU names (EPYC-Milan, ...); vcpu_sig, or family/model/stepping, give
    the CPUID signature instead. guest_features is SEV_FEATURES of the VMSA (sev-snp-measure's default 0x1).
    """

    ovmf: Path
    vcpus: int
    vcpu_type: str | None = None
    vcpu_sig: int | None = None
    vcpu_family: int | None = None
    vcpu_model: int | None = None
    vcpu_stepping: int | None = None
    kernel: Path | None = None
    initrd: Path | None = None
    append: str | None = None
    guest_features: int = 0x1
    vmm_type: str = "QEMU"


def _sevsnpmeasure(module: str) -> ModuleType:
    try:
        return importlib.import_module(f"sevsnpmeasure.{module}")
    except ModuleNotFoundError as exc:
        raise DeriveError("sev-snp-measure is not installed: pip install 'veritee[kbs]'") from exc


def _vcpu_sig(launch: SnpLaunch) -> int:
    vcpu_types = _sevsnpmeasure("vcpu_types")
    family = (launch.vcpu_family, launch.vcpu_model, launch.vcpu_stepping)
    given = [launch.vcpu_type is not None, launch.vcpu_sig is not None, any(v is not None for v in family)]
    if sum(given) != 1:
        raise DeriveUsageError("give one of --vcpu-type, --vcpu-sig or --vcpu-family/--vcpu-model/--vcpu-stepping")
    if launch.vcpu_sig is not None:
        return launch.vcpu_sig
    if launch.vcpu_type is not None:
        signatures: dict[str, int] = vcpu_types.CPU_SIGS
        if launch.vcpu_type not in signatures:
            raise DeriveUsageError(f"--vcpu-type {launch.vcpu_type!r} is not one of {', '.join(signatures)}")
        return signatures[launch.vcpu_type]
    if any(v is None for v in family):
        raise DeriveUsageError("--vcpu-family, --vcpu-model and --vcpu-stepping go together")
    return int(vcpu_types.cpu_sig(*family))


def _check_ovmf(launch: SnpLaunch) -> None:
    """Refuse what would not boot as SEV-SNP firmware before sev-snp-measure sees it: sev-snp-measure measures a
    file without the OVMF footer table or without SEV metadata anyway, and that number matches no guest."""
    size = launch.ovmf.stat().st_size
    if size == 0 or size % PAGE_SIZE or size > MAX_OVMF_SIZE:
        raise DeriveError(
            f"{launch.ovmf}: {size} bytes is not an OVMF image (expected a whole number of 4 KiB pages, at most "
            f"{MAX_OVMF_SIZE // (1024 * 1024)} MiB)"
        )
    ovmf_module = _sevsnpmeasure("ovmf")
    try:
        ovmf = ovmf_module.OVMF(str(launch.ovmf))
        items = list(ovmf.metadata_items())
        types = {item.section_type() for item in items}
    except (RuntimeError, ValueError) as exc:
        raise DeriveError(f"{launch.ovmf}: not an OVMF image with SEV metadata: {exc}") from exc
    section = ovmf_module.SectionType
    # OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm: SNP needs the table that ends 32 bytes before the image's end
    # (OVMF_TABLE_FOOTER_GUID) with the SEV-ES reset block (the APs' VMSA) and the SEV metadata, whose secrets
    # and CPUID pages the PSP fills at launch.
    reset_block = _has_entry(ovmf, ovmf.SEV_ES_RESET_BLOCK_GUID)
    metadata = _has_entry(ovmf, ovmf.OVMF_SEV_META_DATA_GUID)
    if not reset_block and not metadata:
        raise DeriveError(
            f"{launch.ovmf}: not an OVMF image: no OVMF table (GUID {ovmf.OVMF_TABLE_FOOTER_GUID}) with an SEV-ES "
            "reset block or SEV metadata"
        )
    if not metadata:
        raise DeriveError(
            f"{launch.ovmf}: no SEV metadata (OVMF table entry {ovmf.OVMF_SEV_META_DATA_GUID}): not an OVMF build "
            "that can launch an SEV-SNP guest (Debian's /usr/share/ovmf/OVMF.fd is one)"
        )
    missing = [name for name in ("SNP_SECRETS", "CPUID") if section[name] not in types]
    if missing:
        raise DeriveError(f"{launch.ovmf}: SEV metadata has no {' or '.join(missing)} section: not SNP-capable")
    if not reset_block:
        raise DeriveError(f"{launch.ovmf}: no SEV-ES reset block (OVMF table entry {ovmf.SEV_ES_RESET_BLOCK_GUID})")
    if launch.kernel is not None and section.SNP_KERNEL_HASHES not in types:
        raise DeriveError(
            f"{launch.ovmf}: no SNP_KERNEL_HASHES section, so this firmware does not measure a kernel, initrd "
            "and command line: measured direct boot needs an AmdSev build (OvmfPkg/AmdSev/AmdSevX64.dsc)"
        )


def _has_entry(ovmf: Any, guid: str) -> bool:
    try:
        ovmf.table_item(guid)
    except KeyError:
        return False
    return True


def derive_snp(launch: SnpLaunch) -> dict[str, str]:
    """`snp_measurement`: the launch digest sev-snp-measure computes for this guest (hex, 96 digits)."""
    if launch.vcpus < 1:
        raise DeriveUsageError(f"--vcpus is {launch.vcpus}, expected at least 1")
    if (launch.initrd is not None or launch.append is not None) and launch.kernel is None:
        raise DeriveUsageError("--initrd and --append need --kernel")
    if launch.vmm_type not in VMM_TYPES:
        raise DeriveUsageError(f"--vmm-type {launch.vmm_type!r} is not one of {', '.join(VMM_TYPES)}")
    signature = _vcpu_sig(launch)
    for artefact in (launch.kernel, launch.initrd):
        if artefact is not None and not artefact.is_file():
            raise DeriveError(f"{artefact}: no such file")
    _check_ovmf(launch)
    guest = _sevsnpmeasure("guest")
    vmm = _sevsnpmeasure("vmm_types").VMMType[launch.vmm_type]
    try:
        digest: bytes = guest.snp_calc_launch_digest(
            launch.vcpus,
            signature,
            str(launch.ovmf),
            None if launch.kernel is None else str(launch.kernel),
            None if launch.initrd is None else str(launch.initrd),
            launch.append,
            launch.guest_features,
            "",
            vmm,
        )
    except (RuntimeError, ValueError) as exc:
        raise DeriveError(f"sev-snp-measure: {exc}") from exc
    return {"snp_measurement": digest.hex()}


def _parse_log(data: bytes, kind: eventlog.Kind, what: str) -> eventlog.EventLog:
    try:
        return eventlog.parse(data, kind)
    except VerifierError as exc:
        raise DeriveError(f"{what}: {exc}") from exc


def derive_tdx(ccel: bytes | None, quote: bytes | None) -> dict[str, str]:
    """`tdx_rtmr<i>` for each RTMR the CCEL extends, `tdx_mr_td` from the reference boot's quote.

    `quote` is a raw TDX quote (v4/v5) or the agent's evidence JSON (`{"quote", "cc_eventlog"}`), whose log is
    used when no separate CCEL is given. The quote's structure is checked, not its signature: it is the admin's
    own reference boot, trusted as the firmware file of the SNP derivation is.
    """
    if quote is not None and quote.lstrip()[:1] == b"{":
        quote, ccel = _tdx_evidence(quote, ccel)
    if ccel is None and quote is None:
        raise DeriveUsageError("give --ccel (RTMRs) and/or --quote (MRTD) of the reference boot")
    values: dict[str, str] = {}
    body = None
    if quote is not None:
        try:
            body = parse_quote(quote).body
        except VerifierError as exc:
            raise DeriveError(f"TDX quote: {exc}") from exc
        values["tdx_mr_td"] = body.mr_td.hex()
    if ccel is not None:
        log = _parse_log(ccel, "ccel", "CC event log")
        replayed = log.replay().get("sha384", {})
        if not replayed:
            raise DeriveError("CC event log: it extends no RTMR, so it gives no reference value")
        if body is not None:
            try:
                eventlog.check_replay(log, {"sha384": {f"rtmr{i}": value for i, value in enumerate(body.rtmr)}})
            except VerifierError as exc:
                raise DeriveError(f"the quote and the CC event log are not of the same boot: {exc}") from exc
        # Only the registers the log extends: RTMR[3] is usually extended after boot (runtime events), and a
        # reference value for it would refuse every guest that records one.
        for register in eventlog.CCEL_REGISTERS[1:]:
            if register in replayed:
                values[f"tdx_{register}"] = replayed[register].hex()
    return values


def _tdx_evidence(document: bytes, ccel: bytes | None) -> tuple[bytes, bytes | None]:
    try:
        evidence: Any = json.loads(document)
        quote = base64.b64decode(evidence["quote"], validate=True)
        log = evidence.get("cc_eventlog")
        if ccel is None and log is not None:
            ccel = base64.b64decode(log, validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        expected = "{'quote': base64, 'cc_eventlog': base64 | null}"
        raise DeriveError(f"TDX evidence JSON: expected {expected}: {exc}") from exc
    return quote, ccel


def derive_tpm(data: bytes, pcrs: Iterable[int] = ()) -> dict[str, str]:
    """`tpm_pcr<i>`: the SHA-256 bank of each PCR the TCG2 event log extends (or of the PCRs asked for)."""
    wanted = sorted(set(pcrs))
    bad = [i for i in wanted if not 0 <= i < TPM_PCR_COUNT]
    if bad:
        raise DeriveUsageError(f"--pcr {bad[0]} is not a PCR index (0..{TPM_PCR_COUNT - 1})")
    log = _parse_log(data, "tcg2", "TCG2 event log")
    bank: Mapping[str, bytes] | None = log.replay().get(TPM_BANK)
    if bank is None:
        algorithms = [a.name for a in log.spec_id.algorithms]
        raise DeriveError(f"TCG2 event log: no {TPM_BANK} bank (its Spec ID event lists {algorithms})")
    extended = sorted(int(register) for register in bank)
    missing = [i for i in wanted if str(i) not in bank]
    if missing:
        raise DeriveError(f"TCG2 event log: it does not extend PCR {missing} (it extends {extended})")
    return {f"tpm_pcr{i}": bank[str(i)].hex() for i in (wanted or extended)}
