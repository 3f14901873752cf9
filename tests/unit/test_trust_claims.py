"""Trustee's policy model: trust_claims as the AR4SI vector, query_reference_value as a built-in, and each
malformed policy a named PolicyError rather than a pass."""

from __future__ import annotations

import threading

import pytest

from verifier.appraisal import Status, annotated_evidence, appraise
from verifier.rego import Policy, PolicyError

HEAD = "package policy\nimport rego.v1\n"
EVIDENCE = annotated_evidence("sample", {"svn": "1"}, b"")


def _vector_policy(body: str) -> Policy:
    return Policy.compile(HEAD + body)


BAD_POLICIES = {
    "no_trust_claims": ("hardware := 2\n", "trust_claims is undefined"),
    "empty_trust_claims": ("trust_claims := {}\n", "trust_claims is {}"),
    "not_an_object": ("trust_claims := [2]\n", "trust_claims is [2]"),
    "out_of_range": ('trust_claims := {"hardware": 128}\n', "hardware is 128"),
    "below_range": ('trust_claims := {"hardware": -129}\n', "hardware is -129"),
    "not_an_integer": ('trust_claims := {"executables": "three"}\n', "executables is 'three'"),
    "a_boolean": ('trust_claims := {"executables": true}\n', "executables is True"),
    "unknown_claim": ('trust_claims := {"firmware": 2}\n', "names ['firmware']"),
}


@pytest.mark.parametrize("case", sorted(BAD_POLICIES))
def test_malformed_trust_claims_are_policy_errors(case: str) -> None:
    body, message = BAD_POLICIES[case]
    with pytest.raises(PolicyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        appraise(_vector_policy(body), "p", EVIDENCE, {})


def test_claims_left_out_are_zero_and_the_status_is_the_worst_tier() -> None:
    appraisal = appraise(_vector_policy('trust_claims := {"hardware": 2, "executables": 33}\n'), "p", EVIDENCE, {})
    assert appraisal.vector["configuration"] == 0
    assert appraisal.status is Status.WARNING


def test_query_reference_value_answers_the_value_or_null() -> None:
    policy = _vector_policy(
        'known := query_reference_value("svn")\nmissing := query_reference_value("nope")\n'
        'trust_claims := {"hardware": 2}\n'
    )
    values = policy.evaluate("data.policy", {}, None, {"svn": ["1", "2"]})
    assert values["known"] == ["1", "2"]
    assert values["missing"] is None


def test_reference_values_do_not_leak_between_evaluations_or_threads() -> None:
    policy = _vector_policy(
        'default hardware := 97\nhardware := 2 if input.sample.svn in query_reference_value("svn")\n'
        'trust_claims := {"hardware": hardware}\n'
    )
    assert appraise(policy, "p", EVIDENCE, {"svn": ["1"]}).vector["hardware"] == 2
    assert appraise(policy, "p", EVIDENCE, {}).vector["hardware"] == 97
    results: dict[int, int] = {}

    def run(index: int) -> None:
        references = {"svn": ["1"]} if index % 2 else {}
        results[index] = appraise(policy, "p", EVIDENCE, references).vector["hardware"]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: 2 if i % 2 else 97 for i in range(8)}


def test_a_policy_that_breaks_at_evaluation_is_a_policy_error() -> None:
    policy = _vector_policy('trust_claims := {"hardware": to_number(query_reference_value("svn"))}\n')
    with pytest.raises(PolicyError):
        appraise(policy, "p", EVIDENCE, {"svn": ["x"]})
