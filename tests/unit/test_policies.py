"""Every shipped policy compiles and passes its own Rego unit tests (policies/<name>_test.rego)."""

from __future__ import annotations

import gc
import weakref
from concurrent.futures import ThreadPoolExecutor

import pytest

import policies
from verifier.rego import Policy, PolicyError, run_rego_tests

TESTED = sorted(n.removesuffix("_test.rego") for n in policies.names() if n.endswith("_test.rego"))


@pytest.mark.parametrize("name", [n for n in policies.names() if not n.endswith("_test.rego")])
def test_policy_compiles(name: str) -> None:
    Policy.compile(policies.load(name), name)


@pytest.mark.parametrize("name", TESTED)
def test_policy_unit_tests(name: str) -> None:
    results = run_rego_tests(policies.load(f"{name}.rego"), policies.load(f"{name}_test.rego"))
    assert results, f"{name}_test.rego has no test_* rules"
    failed = [rule for rule, passed in results.items() if not passed]
    assert not failed, f"{name}: failing Rego tests {failed}"


def test_every_tee_policy_has_tests() -> None:
    tee_policies = [n.removesuffix(".rego") for n in policies.names() if n.removesuffix(".rego") in policies_tees()]
    assert set(tee_policies) <= set(TESTED)


def policies_tees() -> set[str]:
    return {"sample", "tpm", "snp", "tdx", "az-snp-vtpm", "az-tdx-vtpm", "sampledevice"}


def test_rego_errors_are_policy_errors() -> None:
    with pytest.raises(PolicyError, match=r"bad\.rego"):
        Policy.compile("package policy\nallow :=", "bad.rego")


def test_failing_rego_test_is_reported() -> None:
    results = run_rego_tests(
        "package policy\nimport rego.v1\ndefault allow := false\n",
        "package policy_test\nimport rego.v1\ntest_allows if data.policy.allow\n",
    )
    assert results == {"test_allows": False}


def test_policy_is_usable_from_other_threads() -> None:
    """regorus engines are thread-bound; a Policy shared by the broker's thread pool must still evaluate."""
    from concurrent.futures import ThreadPoolExecutor

    policy = Policy.compile("package policy\nimport rego.v1\ndefault allow := false\nallow if input.x == 1\n")
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda x: policy.evaluate("data.policy", {"x": x})["allow"], [1, 2] * 50))
    assert results == [True, False] * 50


def test_a_policy_failing_to_compile_on_a_worker_thread_frees_its_engine_there() -> None:
    """The broker compiles on a thread pool and handles the error on the event loop's thread: a regorus engine freed
    on a thread other than its own is leaked with an unraisable error (an error under pytest -W error)."""
    with ThreadPoolExecutor(1) as pool:
        failed = pool.submit(Policy.compile, "package policy\nallow := ")
        with pytest.raises(PolicyError):
            failed.result()
        del failed
    gc.collect()


def test_a_policy_dropped_on_another_thread_is_freed_and_leaves_the_engines_to_their_threads() -> None:
    """A compiled policy used on a worker thread and then dropped elsewhere (evicted from the broker's cache by
    another thread) is freed (its engines once held it through the extension, a cycle no collector sees), and the
    worker's engine is not freed on the dropping thread (regorus would leak it with an unraisable error)."""
    source = "package policy\nallow := input.x == 1"
    with ThreadPoolExecutor(1) as pool:
        policy = pool.submit(Policy.compile, source).result()
        assert pool.submit(policy.evaluate, "data.policy", {"x": 1}).result() == {"allow": True}
        assert policy.evaluate("data.policy", {"x": 2}) == {"allow": False}
        dropped = weakref.ref(policy)
        del policy
        gc.collect()
        assert dropped() is None
