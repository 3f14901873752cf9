"""The agent's AAEL records: guest-components' event digests, records the verifier parses and replays, the
claims it makes of them, and events refused before anything is extended."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from attestation_agent.aael import Bank, RuntimeLog, event_text, record, spec_id_header, tagged_event

from verifier.eventlog import aael_claims, parse

# guest-components attestation-agent/src/eventlog (test_event_digest): the digest of the tagged event of
# "domain operation content" in each bank.
GUEST_COMPONENTS_DIGESTS = {
    "sha256": "46df8dacf00a07d34a83cdf56d7978697790787cf2ba1432ef7c38f22cd96351",
    "sha384": "dad5f0e226318ffa9839b75a472c6aa7fdb5834949d0a0a22990cf04d5692440fb00f3aa0609db7e49cd8d793f670d02",
    "sha512": "b708d222ca8bd44dfe6ba0c4ca2cbb72379276fba8091025217064be45a813e5d6124ccf073219edb617d1faf007d5"
    "5061465bdf34b7437dbdc9a7405bd4e9c0",
}


@pytest.mark.parametrize("bank", sorted(GUEST_COMPONENTS_DIGESTS))
def test_event_digest_matches_guest_components(bank: str) -> None:
    digest = Bank(bank).digest(tagged_event(event_text("domain", "operation", "content")))
    assert digest.hex() == GUEST_COMPONENTS_DIGESTS[bank]


class Registers:
    def __init__(self, size: int, initial: int) -> None:
        self.values: dict[int, bytes] = {}
        self.size, self.initial = size, initial

    def extend(self, register: int, digests: dict[str, bytes]) -> None:
        for bank, digest in digests.items():
            old = self.values.get(register, bytes([self.initial]) * self.size)
            self.values[register] = hashlib.new(bank, old + digest).digest()


EVENTS = [
    ("github.com/confidential-containers", "pull-image", "docker.io/library/busybox@sha256:" + "ab" * 32),
    ("example.org", "mount", "a content with spaces, unicode é and symbols !#$%"),
]


def test_tpm_log_replays_from_the_drtm_reset_value_and_names_its_events(tmp_path: Path) -> None:
    tpm = Registers(32, 0xFF)  # PCR 17 after TPM2_Startup (PC Client PTP: DRTM PCRs reset to all ones)
    log = RuntimeLog(tmp_path / "eventlog", 17, 17, (Bank("sha256"),), tpm.extend)
    for event in EVENTS:
        log.measure(*event)
    parsed = parse(spec_id_header((Bank("sha256"),)) + log.records(), "tcg2")
    assert parsed.replay()["sha256"]["17"] == tpm.values[17]
    claims = aael_claims(parsed.to_json()["events"])  # type: ignore[arg-type]
    assert claims == [{"register": "17", "domain": d, "operation": o, "content": c} for d, o, c in EVENTS]


def test_tdx_log_uses_cc_mr_index_4_for_rtmr3(tmp_path: Path) -> None:
    rtmrs = Registers(48, 0)
    log = RuntimeLog(tmp_path / "eventlog", 3, 4, (Bank("sha384"),), rtmrs.extend)
    log.measure(*EVENTS[0])
    parsed = parse(spec_id_header((Bank("sha384"),)) + log.records(), "ccel")
    assert parsed.replay()["sha384"]["rtmr3"] == rtmrs.values[3]
    assert [e.register for e in parsed.events] == ["rtmr3"]


def test_records_in_several_banks(tmp_path: Path) -> None:
    banks = (Bank("sha1"), Bank("sha256"), Bank("sha384"))
    data = tagged_event(event_text(*EVENTS[0]))
    parsed = parse(spec_id_header(banks) + record(17, banks, data), "tcg2")
    assert set(parsed.events[0].digests) == {"sha1", "sha256", "sha384"}
    assert parsed.events[0].digests["sha384"] == hashlib.sha384(data).digest()


BAD_EVENTS = {
    "domain-with-space": (("a b", "op", "x"), "domain 'a b' has a forbidden character"),
    "domain-empty": (("", "op", "x"), "domain '' has a forbidden character"),
    "domain-newline": (("a\nb", "op", "x"), "forbidden character"),
    "domain-too-long": (("a" * 129, "op", "x"), "forbidden character"),
    "operation-with-slash-ok-but-quote": (("d", "o'p", "x"), 'operation "o\'p" has a forbidden character'),
    "content-newline": (("d", "op", "a\nb"), "control character"),
    "content-tab": (("d", "op", "a\tb"), "control character"),
    "content-too-long": (("d", "op", "x" * 4097), "4097 bytes, at most 4096"),
}


@pytest.mark.parametrize("case", sorted(BAD_EVENTS))
def test_bad_event_is_refused_before_the_register_is_extended(tmp_path: Path, case: str) -> None:
    event, message = BAD_EVENTS[case]
    registers = Registers(32, 0xFF)
    log = RuntimeLog(tmp_path / "eventlog", 17, 17, (Bank("sha256"),), registers.extend)
    with pytest.raises(ValueError, match=None) as raised:
        log.measure(*event)
    assert message in str(raised.value)
    assert registers.values == {}
    assert log.records() == b""


def test_failed_extend_logs_nothing(tmp_path: Path) -> None:
    def broken(_register: int, _digests: dict[str, bytes]) -> None:
        raise OSError("device gone")

    log = RuntimeLog(tmp_path / "eventlog", 17, 17, (Bank("sha256"),), broken)
    with pytest.raises(OSError, match="device gone"):
        log.measure(*EVENTS[0])
    assert log.records() == b""
