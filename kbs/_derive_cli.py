"""`kbs admin reference-value derive snp|tdx|tpm`: reference values computed from artefacts (kbs._derive).

Without `--put` the command is local: it prints `NAME VALUE` lines (a JSON object with `--json`) and needs no
broker. With `--put` it stores each value through the admin API, as `reference-value put NAME VALUE` does (the
stored list for NAME is replaced), after every value has been derived: a bad artefact stores nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from verifier.eventlog import MAX_LOG_SIZE

from ._derive import TPM_PCR_COUNT, DeriveError, DeriveUsageError, SnpLaunch, derive_snp, derive_tdx, derive_tpm
from .admin_client import AdminClient

__all__ = ["add_derive_parser"]


def _read_log(path: str | None) -> bytes | None:
    if path is None:
        return None
    size = Path(path).stat().st_size
    if size > MAX_LOG_SIZE:
        raise DeriveError(f"{path}: {size} bytes, more than an event log may have ({MAX_LOG_SIZE})")
    return Path(path).read_bytes()


def _optional(path: str | None) -> Path | None:
    return None if path is None else Path(path)


def _derive(args: argparse.Namespace) -> dict[str, str]:
    match args.tee:
        case "snp":
            return derive_snp(
                SnpLaunch(
                    ovmf=Path(args.ovmf),
                    vcpus=args.vcpus,
                    vcpu_type=args.vcpu_type,
                    vcpu_sig=args.vcpu_sig,
                    vcpu_family=args.vcpu_family,
                    vcpu_model=args.vcpu_model,
                    vcpu_stepping=args.vcpu_stepping,
                    kernel=_optional(args.kernel),
                    initrd=_optional(args.initrd),
                    append=args.append,
                    guest_features=args.guest_features,
                    vmm_type=args.vmm_type,
                )
            )
        case "tdx":
            return derive_tdx(_read_log(args.ccel), _read_log(args.quote))
        case _:
            log = _read_log(args.eventlog)
            assert log is not None  # --eventlog is required
            return derive_tpm(log, args.pcr)


def _print(values: dict[str, str], as_json: bool) -> None:
    if as_json:
        print(json.dumps(values, indent=2))  # in register order
    else:
        for name, value in values.items():
            print(f"{name} {value}")


def _run(args: argparse.Namespace, client: AdminClient | None) -> int:
    if args.expires is not None and client is None:
        print("kbs admin reference-value derive: --expires goes with --put", file=sys.stderr)
        return 2
    try:
        values = _derive(args)
    except DeriveUsageError as exc:
        print(f"kbs admin reference-value derive {args.tee}: {exc}", file=sys.stderr)
        return 2
    except DeriveError as exc:
        print(f"kbs admin reference-value derive {args.tee}: {exc}", file=sys.stderr)
        return 1
    _print(values, args.json)
    if client is not None:
        for name, value in values.items():
            client.put_reference_value(name, [value], args.expires)
            print(f"stored {name}", file=sys.stderr)
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON object {NAME: VALUE}")
    parser.add_argument(
        "--put",
        dest="use_broker",
        action="store_true",
        help="store the values on the broker (--url, --token), replacing each NAME's accepted values",
    )
    parser.add_argument("--expires", type=datetime.fromisoformat, help="with --put: expiry of the stored values")
    parser.set_defaults(local=lambda a: _run(a, None), handler=_run)


def _int(value: str) -> int:
    return int(value, 0)


def _pcr(value: str) -> int:
    index = int(value)
    if not 0 <= index < TPM_PCR_COUNT:
        raise argparse.ArgumentTypeError(f"{value} is not a PCR index (0..{TPM_PCR_COUNT - 1})")
    return index


def add_derive_parser(actions: Any) -> None:
    """Add `derive` to the `reference-value` sub-parsers."""
    derive = actions.add_parser("derive", help="compute reference values from a reference boot's artefacts")
    tees = derive.add_subparsers(dest="tee", required=True)

    snp = tees.add_parser("snp", help="snp_measurement from OVMF (+ kernel/initrd/cmdline) with sev-snp-measure")
    snp.add_argument("--ovmf", required=True, help="the OVMF image the VMM loads (-bios), e.g. /usr/share/ovmf/OVMF.fd")
    snp.add_argument("--vcpus", type=int, required=True)
    snp.add_argument("--vcpu-type", help="sev-snp-measure's CPU name: EPYC-Milan, EPYC-Genoa, ...")
    snp.add_argument("--vcpu-sig", type=_int, help="CPUID signature instead of --vcpu-type")
    snp.add_argument("--vcpu-family", type=int)
    snp.add_argument("--vcpu-model", type=int)
    snp.add_argument("--vcpu-stepping", type=int)
    snp.add_argument("--kernel", help="measured direct boot (needs an AmdSev OVMF build)")
    snp.add_argument("--initrd")
    snp.add_argument("--append", help="the kernel command line")
    snp.add_argument("--guest-features", type=_int, default=0x1, help="SEV_FEATURES of the VMSA (default 0x1)")
    snp.add_argument("--vmm-type", default="QEMU", help="QEMU (default), ec2 or gce")
    _common(snp)

    tdx = tees.add_parser("tdx", help="tdx_rtmr0..3 from a CC event log, tdx_mr_td from the same boot's quote")
    tdx.add_argument("--ccel", help="the CC event log (CCEL) of the reference boot")
    tdx.add_argument("--quote", help="the reference boot's quote (raw, or the agent's evidence JSON)")
    _common(tdx)

    tpm = tees.add_parser("tpm", help="tpm_pcr<N> (SHA-256 bank) from a TCG2 event log")
    tpm.add_argument("--eventlog", required=True, help="binary_bios_measurements of the reference boot")
    tpm.add_argument("--pcr", type=_pcr, action="append", default=[], help="only this PCR (repeatable)")
    _common(tpm)
