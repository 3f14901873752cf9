"""verifier.explain on the Rego shapes policies use: several definitions, else chains, `not`, `some ... in`,
`every`, rules defined by other rules, reference values through the built-in, and the shipped policies."""

from __future__ import annotations

import pytest

import policies
from verifier.explain import (
    AttestationExplanation,
    explain,
    explain_attestation,
    explain_resource,
    explain_rule,
    render,
)
from verifier.rego import Policy

SHAPES = """package policy
import rego.v1

default allow := false

allow if {
\tsome name, submod in input.submods
\tname == "cpu0"
\tsubmod.status == "affirming"
}

allow if {
\tnot input.debug
\tevery v in input.versions { v >= 3 }
}

level := "high" if input.n > 10
else := "mid" if input.n > 5
else := "low"
"""


def test_first_failing_condition_of_each_definition_with_the_values_compared() -> None:
    document = {"submods": {"cpu0": {"status": "warning"}}, "debug": False, "versions": [3, 2], "n": 7}
    explanation = explain_resource(Policy.compile(SHAPES), document, {})
    assert not explanation.allowed
    assert explanation.rule.decided_by == [4]
    default, first, second = explanation.rule.definitions
    assert default.default
    assert first.failed is not None
    assert first.failed.text == 'submod.status == "affirming"'
    assert first.failed.compared == [
        [{"expr": "submod.status", "value": "warning"}, {"expr": '"affirming"', "value": "affirming"}]
    ]
    assert second.failed is not None
    assert second.failed.text.startswith("every v in input.versions")
    assert second.failed.compared == [[{"expr": "input.versions", "value": [3, 2]}]]


def test_not_reports_the_term_that_held() -> None:
    document = {"submods": {}, "debug": True, "versions": [], "n": 0}
    explanation = explain_resource(Policy.compile(SHAPES), document, {})
    failed = explanation.rule.definitions[2].failed
    assert failed is not None
    assert failed.text == "not input.debug"
    assert failed.compared == [[{"expr": "input.debug", "value": True}]]


def test_else_chain_names_the_branch_that_decided() -> None:
    policy = Policy.compile(SHAPES)
    document = {"submods": {}, "debug": False, "versions": [], "n": 7}
    assert explain_resource(policy, document, {}).allowed  # `every` over nothing holds
    rule = explain_rule(policy, "level", document)
    assert rule.value == "mid"
    assert rule.decided_by == [18]
    assert [d.holds for d in rule.definitions] == [False, True, True]


def test_a_condition_that_is_a_rule_is_explained_in_turn() -> None:
    source = policies.load("resource.rego")
    claims = {"submods": {"cpu0": {"ear.status": "affirming", "ear.veraison.annotated-evidence": {"sample": {}}}}}
    explanation = explain_resource(Policy.compile(source), claims, {"resource-path": ["a", "b", "c"]})
    (definition,) = [d for d in explanation.rule.definitions if not d.default]
    assert definition.failed is not None
    assert definition.failed.compared == [[{"expr": "count(reasons)", "value": 1}, {"expr": "0", "value": 0}]]
    assert definition.failed.rules == {"reasons": ["submod cpu0 comes from the sample TEE"]}


def test_attestation_claims_rules_and_status() -> None:
    evidence = {"sample": {"svn": "1"}, "report_data": "", "runtime_data_claims": {}, "init_data": None}
    policy = Policy.compile(policies.load("sample.rego"))
    good = explain_attestation(policy, "default_sample", evidence, {"sample_svn": ["1"]})
    assert good.status == "affirming"
    assert good.trust_vector["executables"] == 3
    bad = explain(policy, evidence, None, {"sample_svn": ["2"]})
    assert isinstance(bad, AttestationExplanation)
    assert bad.status == "contraindicated"
    executables = next(c for c in bad.claims if c.claim == "executables")
    assert executables.rule is not None
    (rule,) = [d for d in executables.rule.definitions if not d.default]
    assert rule.failed is not None
    assert rule.failed.because is not None
    (inner,) = rule.failed.because.definitions
    assert inner.failed is not None
    assert inner.failed.compared == [
        [{"expr": "input.sample.svn", "value": "1"}, {"expr": 'references("sample_svn")', "value": ["2"]}]
    ]
    assert 'input.sample.svn = "1"' in render(bad)


@pytest.mark.parametrize("name", [n for n in policies.names() if not n.endswith("_test.rego")])
def test_every_shipped_policy_explains(name: str) -> None:
    """No shipped policy trips the explainer (each on empty evidence, which every one of them refuses)."""
    policy = Policy.compile(policies.load(name))
    tee = name.removesuffix(".rego")
    document: dict[str, object] = {
        tee: {},
        "report_data": "",
        "runtime_data_claims": {},
        "init_data": None,
        "init_data_claims": {},
    }
    explanation = explain(policy, document, {"resource-path": ["a", "b", "c"]}, {})
    assert render(explanation)


def test_a_probe_that_fails_to_evaluate_is_dropped_not_fatal() -> None:
    """The policy never evaluates an `else` branch after one that held; its probe does, and here it fails (regorus
    raises on `to_number("abc")`): the explanation goes on without that branch's conditions."""
    source = "package policy\nimport rego.v1\nx := 1 if input.ok\nelse := 2 if to_number(input.s) > 1\n"
    rule = explain_rule(Policy.compile(source), "x", {"ok": True, "s": "abc"})
    assert (rule.value, rule.decided_by) == (1, [3])
    taken, skipped = rule.definitions
    assert taken.holds
    assert (skipped.holds, skipped.failed) == (False, None)
