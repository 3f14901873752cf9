"""Rego: every shipped policy and its unit tests under regorus (Veritee's engine) and OPA's Go engine, and seeded
generated inputs for each policy with identical results from both engines.

Numeric reference values are canonical decimal strings (the broker refuses others at `reference-value put`):
regorus and OPA disagree on `to_number` of " 4", "+2" or "07", which `test_non_canonical_numbers_differ`
pins down (docs/oracles.md, `rego-to-number`).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from verifier.rego import REFERENCE_SHIM, Policy, PolicyError, run_rego_tests

from ._harness import TALLY, Worker

pytestmark = pytest.mark.oracles

POLICIES = Path(__file__).resolve().parents[2] / "policies"
GENERATED = 150  # inputs per policy
SEED = 17


def _opa_case(modules: list[tuple[str, str]], path: str, input: object, data: object) -> dict[str, Any]:
    return {"oracle": "opa", "modules": modules, "path": path, "input": input, "data": data}


def _regorus(source: str, input: dict[str, Any], data: dict[str, Any]) -> tuple[bool, object]:
    try:
        # query_reference_value answers from the generated reference values, as the OPA side's shim does.
        return True, Policy.compile(source).evaluate("data.policy", input, data, references=data.get("reference"))
    except PolicyError as exc:
        return False, str(exc)


@pytest.fixture(scope="module")
def worker() -> Worker:
    return Worker()


PAIRS = sorted(p.name.removesuffix("_test.rego") for p in POLICIES.glob("*_test.rego"))


@pytest.mark.parametrize("name", PAIRS)
def test_unit_tests_agree(worker: Worker, name: str) -> None:
    policy = (POLICIES / f"{name}.rego").read_text()
    tests = (POLICIES / f"{name}_test.rego").read_text()
    ours = run_rego_tests(policy, tests)
    (theirs,) = worker.run(
        [
            _opa_case(
                [("policy.rego", policy), ("policy_test.rego", tests), ("shim.rego", REFERENCE_SHIM)],
                "policy_test",
                {},
                {},
            )
        ]
    )
    assert theirs.accept, theirs.detail
    opa = {test: (theirs.value or {}).get(test) is True for test in ours}
    assert ours, f"{name}_test.rego has no test_ rules"
    assert all(ours.values()), f"regorus: failing unit tests {[t for t, ok in ours.items() if not ok]}"
    for test, passed in ours.items():
        TALLY.record(
            "rego opa (unit tests)", f"{name} {test}", opa[test] == passed, f"regorus {passed} opa {opa[test]}"
        )
    assert opa == ours


# --- generated inputs ------------------------------------------------------------------------------------------

HEX48 = [bytes([i]) * 48 for i in range(4)]


def _hex(rng: random.Random, size: int) -> str:
    return rng.choice([bytes([rng.randrange(4)]) * size, rng.randbytes(size)]).hex()


def _maybe(rng: random.Random, value: object) -> object:
    """Mostly the value; sometimes another JSON type, null, or a missing key (returned as ...)."""
    roll = rng.random()
    if roll < 0.85:
        return value
    return rng.choice([None, 0, 1, -1, "", "x", True, False, [], {}, [value], ...])


def _put(doc: dict[str, Any], key: str, value: object) -> None:
    if value is not ...:
        doc[key] = value


def _numbers(rng: random.Random) -> list[str]:
    return [str(rng.randrange(0, 256)) for _ in range(rng.randrange(0, 3))]


def gen_snp(rng: random.Random) -> tuple[dict[str, Any], dict[str, Any]]:
    measurement = _hex(rng, 48)
    tcb: dict[str, Any] = {}
    for component in ("bootloader", "tee", "snp", "microcode") + (("fmc",) if rng.random() < 0.3 else ()):
        _put(tcb, component, _maybe(rng, rng.randrange(0, 256)))
    snp: dict[str, Any] = {}
    _put(snp, "measurement", _maybe(rng, measurement))
    _put(snp, "reported_tcb", _maybe(rng, tcb))
    for flag in ("debug", "migrate_ma"):
        _put(snp, flag, _maybe(rng, rng.random() < 0.2))
    _put(snp, "vmpl", _maybe(rng, rng.choice([0, 0, 0, 1, 3])))
    reference: dict[str, Any] = {"snp_measurement": rng.choice([[measurement], [], [_hex(rng, 48)]])}
    for component in ("bootloader", "tee", "snp", "microcode", "fmc"):
        if rng.random() < 0.85:
            reference[f"snp_min_tcb_{component}"] = _numbers(rng)
    return {"snp": snp}, {"reference": reference}


def gen_tdx(rng: random.Random) -> tuple[dict[str, Any], dict[str, Any]]:
    tdx: dict[str, Any] = {}
    fields = {"mr_td": _hex(rng, 48), "mr_seam": _hex(rng, 48), "mr_config_id": _hex(rng, 48)}
    for key, value in fields.items():
        _put(tdx, key, _maybe(rng, value))
    _put(tdx, "rtmr", _maybe(rng, [_hex(rng, 48) for _ in range(rng.choice([4, 4, 4, 3]))]))
    statuses = ["UpToDate", "OutOfDate", "SWHardeningNeeded", "ConfigurationNeeded", "Revoked", "Bogus"]
    _put(tdx, "tcb_status", _maybe(rng, rng.choice(statuses)))
    _put(tdx, "debug", _maybe(rng, rng.random() < 0.2))
    _put(tdx, "collateral_expired", _maybe(rng, rng.random() < 0.2))
    reference: dict[str, Any] = {}
    for key in ("mr_td", "mr_seam", "mr_config_id"):
        if rng.random() < 0.7:
            reference[f"tdx_{key}"] = rng.choice([[fields[key]], [], [_hex(rng, 48)], [fields[key], _hex(rng, 48)]])
    rtmrs = tdx.get("rtmr")
    for i, value in enumerate(rtmrs if isinstance(rtmrs, list) else []):
        if rng.random() < 0.5:
            reference[f"tdx_rtmr{i}"] = rng.choice([[value], [_hex(rng, 48)]])
    return {"tdx": tdx}, {"reference": reference}


def gen_tpm(rng: random.Random) -> tuple[dict[str, Any], dict[str, Any]]:
    pcrs = {str(i): _hex(rng, 32) for i in rng.sample(range(24), rng.randrange(0, 8))}
    ak = _hex(rng, 32)
    tpm: dict[str, Any] = {}
    _put(tpm, "ak_trust", _maybe(rng, rng.choice(["certificate", "enrolled", "none", "reference"])))
    _put(tpm, "ak_sha256", _maybe(rng, ak))
    _put(tpm, "pcrs", _maybe(rng, {"sha256": pcrs}))
    _put(tpm, "eventlog", _maybe(rng, rng.choice([None, {"events": 3}])))
    _put(tpm, "pcr_replay_ok", _maybe(rng, rng.random() < 0.7))
    reference: dict[str, Any] = {}
    if rng.random() < 0.5:
        reference["tpm_ak_sha256"] = rng.choice([[ak], [_hex(rng, 32)]])
    for index, value in list(pcrs.items())[: rng.randrange(0, 4)]:
        reference[f"tpm_pcr{index}"] = rng.choice([[value], [_hex(rng, 32)], [value, _hex(rng, 32)]])
    if rng.random() < 0.1:
        reference[f"tpm_pcr{rng.randrange(24)}"] = [_hex(rng, 32)]
    return {"tpm": tpm}, {"reference": reference}


def gen_sample(rng: random.Random) -> tuple[dict[str, Any], dict[str, Any]]:
    svn = rng.randrange(0, 5)
    reference = {"sample_svn": rng.choice([[svn], [], [svn + 1], [str(svn)]])}
    return {"sample": {"svn": _maybe(rng, svn)}}, {"reference": reference}


def gen_sampledevice(rng: random.Random) -> tuple[dict[str, Any], dict[str, Any]]:
    svn = rng.randrange(0, 5)
    reference = {"sampledevice_svn": rng.choice([[svn], [], [svn + 1], [str(svn)]])}
    device: dict[str, Any] = {}
    _put(device, "svn", _maybe(rng, svn))
    return {"sampledevice": device}, {"reference": reference}


def _shim(source: str) -> list[tuple[str, str]]:
    """OPA has no query_reference_value built-in: attestation policies get the same stand-in the unit tests use."""
    return [("shim.rego", REFERENCE_SHIM)] if "query_reference_value" in source else []


def gen_submods(rng: random.Random) -> tuple[dict[str, Any], dict[str, Any]]:
    submods: dict[str, Any] = {}
    for name in rng.sample(["tdx", "snp", "tpm", "sample", "azure"], rng.randrange(0, 4)):
        submod: dict[str, Any] = {}
        _put(submod, "ear.status", _maybe(rng, rng.choice(["affirming", "warning", "contraindicated", "none"])))
        if rng.random() < 0.3:
            submod["ear.veraison.annotated-evidence"] = rng.choice(
                [{"sample": {"svn": 1}}, {"tdx": {}}, {"sample": None}]
            )
        submods[name] = submod
    document: dict[str, Any] = {}
    _put(document, "submods", _maybe(rng, submods))
    return document, {}


def _azure(rng: random.Random, kind: str, tee: str, claims: dict[str, Any], reference: dict[str, Any]) -> None:
    """Wrap a TEE's generated claims as an Azure CVM's (the vTPM's PCRs, the HCL's VM configuration) and rename
    its reference values as the az-* policies name them."""
    pcrs = {str(i): _hex(rng, 32) for i in rng.sample(range(24), rng.randrange(0, 5))}
    cvm: dict[str, Any] = {}
    _put(cvm, tee, _maybe(rng, claims[tee]))
    _put(cvm, "tpm", _maybe(rng, {"pcrs": {"sha256": pcrs}, "ak_trust": "hcl"}))
    vm_configuration: dict[str, Any] = {}
    _put(vm_configuration, "secure-boot", _maybe(rng, rng.random() < 0.8))
    _put(cvm, "hcl", _maybe(rng, {"vm_configuration": vm_configuration}))
    claims.clear()
    claims[kind] = cvm
    for name in list(reference):
        if name.startswith(f"{tee}_"):
            reference[f"az_{name}"] = reference.pop(name)
    for index, value in list(pcrs.items())[: rng.randrange(0, 3)]:
        reference[f"az_pcr{index}"] = rng.choice([[value], [_hex(rng, 32)]])


def gen_az_snp(rng: random.Random) -> tuple[dict[str, Any], dict[str, Any]]:
    claims, data = gen_snp(rng)
    reference = data["reference"]
    reference["az_snp_measurement"] = reference.pop("snp_measurement")
    _azure(rng, "az-snp-vtpm", "snp", claims, {})
    for index in rng.sample(range(24), rng.randrange(0, 3)):
        reference[f"az_pcr{index}"] = [_hex(rng, 32)]
    return claims, data


def gen_az_tdx(rng: random.Random) -> tuple[dict[str, Any], dict[str, Any]]:
    claims, data = gen_tdx(rng)
    _azure(rng, "az-tdx-vtpm", "tdx", claims, data["reference"])
    return claims, data


GENERATORS: dict[str, Callable[[random.Random], tuple[dict[str, Any], dict[str, Any]]]] = {
    "az-snp-vtpm.rego": gen_az_snp,
    "az-tdx-vtpm.rego": gen_az_tdx,
    "snp.rego": gen_snp,
    "tdx.rego": gen_tdx,
    "tpm.rego": gen_tpm,
    "sample.rego": gen_sample,
    "sampledevice.rego": gen_sampledevice,
    "resource.rego": gen_submods,
    "demo_resource_allow_sample.rego": gen_submods,
}


def test_every_shipped_policy_has_a_generator() -> None:
    shipped = {p.name for p in POLICIES.glob("*.rego") if not p.name.endswith("_test.rego")}
    assert shipped == set(GENERATORS)


@pytest.mark.parametrize("policy", sorted(GENERATORS))
def test_generated_inputs_agree(worker: Worker, policy: str) -> None:
    source = (POLICIES / policy).read_text()
    seed = int.from_bytes(hashlib.sha256(f"{SEED}/{policy}".encode()).digest()[:8], "big")
    rng = random.Random(seed)
    cases = [GENERATORS[policy](rng) for _ in range(GENERATED)]
    answers = worker.run([_opa_case([("policy.rego", source), *_shim(source)], "policy", i, d) for i, d in cases])
    problems = []
    for n, ((input, data), theirs) in enumerate(zip(cases, answers, strict=True)):
        ok, ours = _regorus(source, input, data)
        # An undefined package value is {} in Veritee's wrapper; an OPA error (e.g. a type error in a builtin)
        # is a failure as a regorus PolicyError is.
        theirs_value = {} if theirs.status == "undefined" else theirs.value
        same = (ok, ours if ok else None) == (theirs.accept, theirs_value if theirs.accept else None)
        why = f"input {input} data {data}: regorus {ok}/{ours} opa {theirs.accept}/{theirs_value or theirs.detail}"
        TALLY.record("rego opa (generated)", f"{policy} #{n}", same, why)
        if not same:
            problems.append(why)
    assert problems == []


NON_CANONICAL = [" 4", "4 ", "+2", "07", "1e1", "4.0", "0x10", "-0"]


def test_non_canonical_numbers_differ(worker: Worker) -> None:
    """What made reference values need validation: to_number of non-canonical decimal strings. Both engines
    fail closed on them for snp.rego (hardware is never affirmed on an error); the broker refuses them."""
    source = (POLICIES / "snp.rego").read_text()
    rows = []
    for text in NON_CANONICAL:
        query = f'package probe\nimport rego.v1\nvalue := to_number("{text}")\n'
        ok, ours = _regorus_doc(query)
        (theirs,) = worker.run([_opa_case([("probe.rego", query)], "probe", {}, {})])
        opa = (theirs.value or {}).get("value", "undefined") if theirs.accept else "error"
        rows.append((text, ours if ok else "error", opa))
    differing = [r for r in rows if r[1] != r[2]]
    assert differing, "regorus and OPA now agree on every non-canonical number: update docs/oracles.md"
    for text, *_ in differing:
        input, data = gen_snp(random.Random(0))
        data["reference"].update({f"snp_min_tcb_{c}": [text] for c in ("bootloader", "tee", "snp", "microcode")})
        ok, ours = _regorus(source, input, data)
        assert not ok or (isinstance(ours, dict) and ours.get("hardware") != 2)
    TALLY.intended.update({f"rego opa: rego-to-number {r[0]!r}: regorus {r[1]} opa {r[2]}": 1 for r in differing})


def _regorus_doc(source: str) -> tuple[bool, object]:
    try:
        return True, Policy.compile(source, "probe.rego").evaluate("data.probe", {}).get("value", "undefined")
    except PolicyError as exc:
        return False, str(exc)
