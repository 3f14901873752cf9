"""The real event logs of tests/vectors and the values EXPECTED.log gives for them, shared by the event log tests."""

from __future__ import annotations

RHEL8 = "tpm/go-tpm-tools/rhel8-uefi.bin"
RHEL8_EXPECTED = "tpm/go-tpm-tools/eventlog_expected_pcrs.json"
CCEL_OVMF = "tdx/trustee/CCEL_data_ovmf"
CCEL = "tdx/trustee/CCEL_data"

# EXPECTED.log, "CCEL replays (trustee)": events after the Spec ID header, end of the last record, RTMRs.
CCEL_OVMF_EVENTS = 20
CCEL_OVMF_END = 2120
CCEL_OVMF_RTMRS = {
    "rtmr0": ("8566f998798db09443b244c62de9a3041fb02e2e6936c4396d784bba2e90177329ec5aba3bb484404f2ab9cc90abe193"),
    "rtmr1": ("775b9f6bfe99f8a31396f0d0218e67ffa796d3b96ccf961cbb0deba48c79c00f082cda1a5567c1c16305f1fc210c13c6"),
    "rtmr2": ("94eaf7a7bf398ed8d888c91057ae0261802e4f3df084213a76ca7f0b5055ac9d2241de43cd58d9e8b49c503bbf25f34a"),
}
CCEL_EVENTS = 5
CCEL_END = 9822
CCEL_RTMRS = {
    "rtmr0": ("2dc712306a963eadb894ad47dbaa17df44814151555aee11cbb843becca88950ffd079664902e6f22c66f7c8213543f4"),
    "rtmr1": ("0fa3be56af61208bbd179dc7b124988eb929319154663c539d6f46445ecac2fec287075047ff7bd1922829fec28cd3cf"),
}
# EXPECTED.log, "T-trustee tdx_quote_4.dat": the quote's RTMRs, which CCEL_data does not match.
QUOTE4_RTMRS = {
    "rtmr0": ("e940da7c2712d2790e2961e00484f4fa8e6f9eed71361655ae22699476b14f9e63867eb41edd4b480fef0c59f496b288"),
    "rtmr1": ("559cfcf42716ed6c40a48a73d5acb7da255435012f0a9f00fbe8c1c57612ede486a5684c4c9ff3ddf52315fcdca3a596"),
    "rtmr2": "0" * 96,
    "rtmr3": "0" * 96,
}
