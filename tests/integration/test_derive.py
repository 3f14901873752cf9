"""`kbs admin reference-value derive` without a broker: each value is checked against an independent computation
(sev-snp-measure's own CLI for SNP, `verifier eventlog` and go-tpm-tools' expected PCRs for the event logs), and
every bad artefact or flag gets its exit code and message."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import run_cli
from verifier.tdx import parse_quote

# Debian's `ovmf` package (scripts/setup installs it): the one image of it with SEV-SNP metadata.
DEBIAN_OVMF = Path("/usr/share/ovmf/OVMF.fd")
SEV_METADATA_GUID = uuid.UUID("dc886566-984a-4798-a75e-5585a7bf67cc").bytes_le
TPM_LOG = "tpm/go-tpm-tools/rhel8-uefi.bin"
CCEL = "tdx/trustee/CCEL_data_ovmf"

# sev-snp-measure's options as both CLIs spell them.
LAUNCHES = {
    "one-vcpu-epyc-v4": ["--vcpus", "1", "--vcpu-type", "EPYC-v4"],
    "four-vcpus-milan": ["--vcpus", "4", "--vcpu-type", "EPYC-Milan"],
    "genoa-debug-swap": ["--vcpus", "2", "--vcpu-type", "EPYC-Genoa", "--guest-features", "0x21"],
    "signature-gce": ["--vcpus", "2", "--vcpu-sig", "0xa00f11", "--vmm-type", "gce"],
    "family-model-ec2": ["--vcpus", "3", "--vcpu-family", "25", "--vcpu-model", "1", "--vcpu-stepping", "1",
                         "--vmm-type", "ec2"],
}  # fmt: skip


@pytest.fixture(scope="module")
def ovmf() -> Path:
    if not DEBIAN_OVMF.is_file():
        pytest.fail(f"{DEBIAN_OVMF} is missing: install Debian's ovmf package (scripts/setup)")
    return DEBIAN_OVMF


def derive(*args: str) -> subprocess.CompletedProcess[bytes]:
    return run_cli("kbs", "admin", "reference-value", "derive", *args)


def derived(*args: str) -> dict[str, str]:
    done = derive(*args, "--json")
    assert done.returncode == 0, done.stderr.decode()
    values: dict[str, str] = json.loads(done.stdout)
    return values


def sev_snp_measure(*args: str) -> str:
    """The package's own command, in its own process: the independent computation."""
    command = Path(sys.executable).with_name("sev-snp-measure")
    done = subprocess.run([str(command), "--mode", "snp", *args], capture_output=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().strip()


@pytest.mark.parametrize("launch", LAUNCHES.values(), ids=LAUNCHES.keys())
def test_snp_measurement_of_debians_ovmf_equals_sev_snp_measures_cli(ovmf: Path, launch: list[str]) -> None:
    values = derived("snp", "--ovmf", str(ovmf), *launch)
    assert values == {"snp_measurement": sev_snp_measure("--ovmf", str(ovmf), *launch)}
    assert len(values["snp_measurement"]) == 96


def test_snp_plain_output_is_name_and_value(ovmf: Path) -> None:
    done = derive("snp", "--ovmf", str(ovmf), *LAUNCHES["four-vcpus-milan"])
    assert done.returncode == 0, done.stderr.decode()
    expected = sev_snp_measure("--ovmf", str(ovmf), *LAUNCHES["four-vcpus-milan"])
    assert done.stdout.decode() == f"snp_measurement {expected}\n"


def _without_sev_metadata(ovmf: Path, tmp_path: Path) -> Path:
    """Debian's OVMF with its SEV metadata entry renamed in the OVMF table (as in a build without SEV support;
    Debian 12's OVMF_CODE_4M.fd is one)."""
    data = ovmf.read_bytes()
    assert data.count(SEV_METADATA_GUID) == 1
    path = tmp_path / "no-sev-metadata.fd"
    path.write_bytes(data.replace(SEV_METADATA_GUID, bytes(16)))
    return path


def test_bad_ovmf_files_fail_with_a_clear_error(ovmf: Path, tmp_path: Path, vectors: Path) -> None:
    short = tmp_path / "short.fd"
    short.write_bytes(b"not firmware")
    empty = tmp_path / "empty.fd"
    empty.write_bytes(b"")
    cases = {
        short: "12 bytes is not an OVMF image",
        empty: "0 bytes is not an OVMF image",
        vectors / "tdx/trustee/CCEL_data": "not an OVMF image: no OVMF table",
        _without_sev_metadata(ovmf, tmp_path): "no SEV metadata",
    }
    for path, message in cases.items():
        done = derive("snp", "--ovmf", str(path), *LAUNCHES["four-vcpus-milan"])
        assert done.returncode == 1, path
        assert message in done.stderr.decode(), done.stderr.decode()
        assert done.stdout == b""


def test_measured_direct_boot_needs_an_amdsev_build(ovmf: Path, tmp_path: Path) -> None:
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"\x00" * 4096)
    done = derive("snp", "--ovmf", str(ovmf), *LAUNCHES["one-vcpu-epyc-v4"], "--kernel", str(kernel),
                  "--append", "console=ttyS0")  # fmt: skip
    assert done.returncode == 1
    assert "no SNP_KERNEL_HASHES section" in done.stderr.decode()
    assert "AmdSev build" in done.stderr.decode()


def _with_kernel_hashes_section(ovmf: Path, tmp_path: Path) -> Path:
    """SYNTHETIC firmware: Debian's OVMF with its second SEV metadata section (SNP_SEC_MEM at 0x80a000) turned into
    a one-page SNP_KERNEL_HASHES section, the shape an AmdSev build has (OvmfSevMetadata.asm). No guest boots it;
    it only lets the kernel/initrd/cmdline options be compared with sev-snp-measure's CLI, as Debian packages no
    AmdSev build."""
    data = bytearray(ovmf.read_bytes())
    entry = data.rindex(SEV_METADATA_GUID)
    # An OVMF table entry is {data, u16 size, GUID}: the metadata's offset from the end is the u32 before the size.
    header = len(data) - int.from_bytes(data[entry - 6 : entry - 2], "little")
    assert data[header : header + 4] == b"ASEV"
    item = header + 16 + 12  # the 16-byte header, then 12-byte {gpa, size, type} items
    assert data[item : item + 12] == struct.pack("<III", 0x80A000, 0x3000, 1)
    data[item : item + 12] = struct.pack("<III", 0x80A000, 0x1000, 0x10)
    path = tmp_path / "synthetic-amdsev.fd"
    path.write_bytes(bytes(data))
    return path


def test_kernel_initrd_and_cmdline_reach_sev_snp_measure(ovmf: Path, tmp_path: Path) -> None:
    firmware = str(_with_kernel_hashes_section(ovmf, tmp_path))
    kernel, initrd = tmp_path / "vmlinuz", tmp_path / "initrd.img"
    kernel.write_bytes(b"kernel" * 1000)
    initrd.write_bytes(b"initrd" * 1000)
    boot = ["--kernel", str(kernel), "--initrd", str(initrd), "--append", "console=ttyS0 root=/dev/vda"]
    launch = ["--ovmf", firmware, *LAUNCHES["four-vcpus-milan"]]
    measured = derived("snp", *launch, *boot)
    assert measured == {"snp_measurement": sev_snp_measure(*launch, *boot)}
    other_cmdline = derived("snp", *launch, *boot[:-1], "console=ttyS0")
    assert other_cmdline == {"snp_measurement": sev_snp_measure(*launch, *boot[:-1], "console=ttyS0")}
    assert other_cmdline != measured
    assert derived("snp", *launch, "--kernel", str(kernel)) == {
        "snp_measurement": sev_snp_measure(*launch, "--kernel", str(kernel))
    }
    done = derive("snp", *launch, "--kernel", str(tmp_path / "missing"))
    assert done.returncode == 1
    assert "missing: no such file" in done.stderr.decode()


USAGE_ERRORS = {
    "unknown-flag": (["snp", "--ovmf", "x", "--vcpus", "1", "--bogus"], "unrecognized arguments: --bogus"),
    "no-vcpu-type": (["snp", "--ovmf", "x", "--vcpus", "1"], "give one of --vcpu-type"),
    "unknown-vcpu-type": (["snp", "--ovmf", "x", "--vcpus", "1", "--vcpu-type", "EPYC-9"], "is not one of EPYC"),
    "zero-vcpus": (["snp", "--ovmf", "x", "--vcpus", "0", "--vcpu-type", "EPYC"], "--vcpus is 0"),
    "initrd-without-kernel": (["snp", "--ovmf", "x", "--vcpus", "1", "--vcpu-type", "EPYC", "--initrd", "i"],
                              "--initrd and --append need --kernel"),
    "unknown-vmm": (["snp", "--ovmf", "x", "--vcpus", "1", "--vcpu-type", "EPYC", "--vmm-type", "xen"],
                    "--vmm-type 'xen' is not one of"),
    "no-tee": ([], "the following arguments are required: tee"),
    "unknown-tee": (["sev"], "invalid choice: 'sev'"),
    "tdx-nothing": (["tdx"], "give --ccel (RTMRs) and/or --quote (MRTD)"),
    "tpm-no-log": (["tpm"], "the following arguments are required: --eventlog"),
    "tpm-bad-pcr": (["tpm", "--eventlog", "x", "--pcr", "24"], "argument --pcr: 24 is not a PCR index (0..23)"),
    "expires-without-put": (["tpm", "--eventlog", "x", "--expires", "2030-01-01T00:00:00+00:00"],
                            "--expires goes with --put"),
}  # fmt: skip


@pytest.mark.parametrize(("args", "message"), USAGE_ERRORS.values(), ids=USAGE_ERRORS.keys())
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    done = derive(*args)
    assert done.returncode == 2, done.stderr.decode()
    assert message in done.stderr.decode()
    assert done.stdout == b""


def test_tpm_pcrs_equal_go_tpm_tools_expected_values(vectors: Path) -> None:
    expected = json.loads((vectors / "tpm/go-tpm-tools/eventlog_expected_pcrs.json").read_text())
    sha256 = expected["rhel8-uefi.bin"]["SHA256"]
    values = derived("tpm", "--eventlog", str(vectors / TPM_LOG))
    assert values == {f"tpm_pcr{pcr}": value for pcr, value in sha256.items()}
    assert list(values) == [f"tpm_pcr{pcr}" for pcr in sorted(map(int, sha256))]  # register order
    only = derived("tpm", "--eventlog", str(vectors / TPM_LOG), "--pcr", "7", "--pcr", "4")
    assert only == {"tpm_pcr4": sha256["4"], "tpm_pcr7": sha256["7"]}


def test_tpm_pcr_the_log_does_not_extend_is_refused(vectors: Path) -> None:
    done = derive("tpm", "--eventlog", str(vectors / TPM_LOG), "--pcr", "12")
    assert done.returncode == 1
    assert "does not extend PCR [12] (it extends [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 14])" in done.stderr.decode()


def test_truncated_and_foreign_event_logs_fail(vectors: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes((vectors / TPM_LOG).read_bytes()[:1000])
    done = derive("tpm", "--eventlog", str(truncated))
    assert done.returncode == 1
    assert "TCG2 event log: malformed_evidence" in done.stderr.decode()
    assert "only 306 remain" in done.stderr.decode()
    done = derive("tdx", "--ccel", str(vectors / TPM_LOG))  # a TPM log where a CCEL is expected
    assert done.returncode == 1
    assert "CC event log:" in done.stderr.decode()
    done = derive("tpm", "--eventlog", str(tmp_path / "missing.bin"))
    assert done.returncode == 1
    assert "No such file or directory" in done.stderr.decode()


def test_tdx_rtmrs_equal_the_verifiers_replay(vectors: Path) -> None:
    replay = run_cli("verifier", "eventlog", str(vectors / CCEL), "--kind", "ccel")
    assert replay.returncode == 0, replay.stderr.decode()
    registers = json.loads(replay.stdout)["registers"]["sha384"]
    values = derived("tdx", "--ccel", str(vectors / CCEL))
    # The log extends RTMR[0..2]; RTMR[3] (runtime events) gets no reference value.
    assert values == {f"tdx_{name}": registers[name] for name in ("rtmr0", "rtmr1", "rtmr2")}


def test_tdx_mr_td_comes_from_the_reference_quote(vectors: Path) -> None:
    quote = vectors / "tdx/trustee/tdx_quote_4.dat"
    assert derived("tdx", "--quote", str(quote)) == {"tdx_mr_td": parse_quote(quote.read_bytes()).body.mr_td.hex()}


def test_tdx_quote_and_log_of_different_boots_are_refused(vectors: Path) -> None:
    done = derive("tdx", "--ccel", str(vectors / CCEL), "--quote", str(vectors / "tdx/trustee/tdx_quote_4.dat"))
    assert done.returncode == 1
    assert "the quote and the CC event log are not of the same boot: eventlog_mismatch" in done.stderr.decode()
    assert done.stdout == b""


def test_tdx_bad_quote_and_bad_evidence_json(vectors: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "quote.dat"
    truncated.write_bytes((vectors / "tdx/trustee/tdx_quote_4.dat").read_bytes()[:600])
    done = derive("tdx", "--quote", str(truncated))
    assert done.returncode == 1
    assert "TDX quote: malformed_evidence" in done.stderr.decode()
    evidence = tmp_path / "evidence.json"
    evidence.write_text(json.dumps({"quote": "not base64!"}))
    done = derive("tdx", "--quote", str(evidence))
    assert done.returncode == 1
    assert "TDX evidence JSON: expected" in done.stderr.decode()
