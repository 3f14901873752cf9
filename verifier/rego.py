"""The one place that touches the Rego engine (regorus, PyPI build `gordon-to-regorus`).

Swapping the engine build is a change to this file only. A `Policy` is compiled once and evaluated many times;
each evaluation works on a clone, so a Policy is safe to share between threads.

Reference values reach policies as trustee's do, through the built-in `query_reference_value(name)`: the value
stored under `name` (Veritee: the list of accepted values that have not expired), or null when there is none. It is
a regorus extension function (`Engine.add_extension`) registered on every engine; it reads the reference values of
the evaluation under way from the calling thread (an engine is bound to its thread and evaluates synchronously, and
an extension cannot be re-registered on a clone). Rego unit tests cannot replace an extension with `with` in
regorus, so `run_rego_tests` compiles the policy with `REFERENCE_SHIM` instead: a Rego function of the same name
and meaning over `data.reference`, which tests set with `with data.reference as {...}`.

>>> p = Policy.compile("package policy\\nimport rego.v1\\ndefault allow := false\\nallow if input.x == 1\\n")
>>> p.evaluate("data.policy", {"x": 1})["allow"]
True
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from .errors import PolicyError

__all__ = ["REFERENCE_FUNCTION", "REFERENCE_SHIM", "Policy", "PolicyError", "run_rego_tests"]

REFERENCE_FUNCTION = "query_reference_value"
# The unit-test stand-in for the extension: same name, same result (the value, or null when there is none).
REFERENCE_SHIM = (
    f"package policy\n\n{REFERENCE_FUNCTION}(name) := value if value := object.get(data.reference, name, null)\n"
)

MAX_POLICY_BYTES = 256 * 1024
_PACKAGE = re.compile(r"^package\s+([A-Za-z0-9_.]+)", re.MULTILINE)
_TEST_RULE = re.compile(r"^(test_[A-Za-z0-9_]+)\b", re.MULTILINE)
# Compiled engines, per thread: a regorus engine may only be used and freed by the thread that made it, so each
# thread keeps its own, keyed by the policy's modules, and evicts (frees) them itself; a Policy holds none and may
# be dropped by any thread. The extension reads the references of the evaluation under way from the same place.
_THREAD = threading.local()
ENGINES_PER_THREAD = 128


def _thread_engines() -> OrderedDict[tuple[object, ...], Any]:
    engines: OrderedDict[tuple[object, ...], Any] | None = getattr(_THREAD, "engines", None)
    if engines is None:
        engines = _THREAD.engines = OrderedDict()
    return engines


def _query_reference_value(name: object) -> object:
    references: Mapping[str, object] = getattr(_THREAD, "references", None) or {}
    if not isinstance(name, str):
        raise PolicyError(f"{REFERENCE_FUNCTION}: the name is {type(name).__name__}, expected a string")
    return references.get(name)


def _regorus() -> Any:
    """The engine module, imported on the first compile: verification alone (`verifier verify`) runs without it."""
    try:
        import regorus  # noqa: PLC0415
    except ImportError as exc:
        raise PolicyError(
            "Rego appraisal needs the regorus engine, which a bare install does not include: "
            "pip install 'veritee[rego]' (the broker's 'veritee[kbs]' includes it)"
        ) from exc
    return regorus


def _message(exc: Exception) -> str:
    # regorus appends a Rust backtrace when RUST_BACKTRACE is set; the first part is the message.
    return str(exc).split("\nStack backtrace:", 1)[0].strip()


class Policy:
    """A compiled policy. regorus engines are bound to the thread that made them, so each thread compiles its
    own copy on first use (kept in the thread's engine cache) and evaluates on a clone of it."""

    def __init__(self, source: str, modules: tuple[tuple[str, str], ...], *, extension: bool = True) -> None:
        self.source = source
        self._modules = modules
        self._extension = extension
        self._key = (modules, extension)
        self._engine()  # compile now, in the caller's thread, so errors surface here

    @classmethod
    def compile(cls, source: str, name: str = "policy.rego", *extra: tuple[str, str]) -> Policy:
        """Compile Rego source (plus extra (name, source) modules, e.g. a policy's unit tests)."""
        if len(source.encode()) > MAX_POLICY_BYTES:
            raise PolicyError(f"policy is {len(source.encode())} bytes, at most {MAX_POLICY_BYTES}")
        return cls(source, ((name, source), *extra))

    def _build(self) -> Any:
        engine = _regorus().Engine()
        failure = None
        for module_name, module_source in self._modules:
            try:
                engine.add_policy(module_name, module_source)
            except RuntimeError as exc:
                failure = f"{module_name}: {_message(exc)}"
                break
        if failure is not None:
            # Freed here, in the thread that made it: a regorus engine freed on another thread is leaked with an
            # error, and an exception's traceback (its frames keep their locals) would carry this one to wherever
            # the error is handled, such as the event loop's thread.
            del engine
            raise PolicyError(failure)
        if self._extension:
            engine.add_extension(REFERENCE_FUNCTION, 1, _query_reference_value)
        return engine

    def with_module(self, name: str, source: str) -> Policy:
        """This policy compiled together with one more module (e.g. probes of its rules, `verifier.explain`)."""
        return Policy(self.source, (*self._modules, (name, source)), extension=self._extension)

    def syntax_tree(self) -> dict[str, Any]:
        """The engine's abstract syntax tree of the policy's own module (regorus `get_ast_as_json`): rules with
        their heads, bodies and statements, each node with its `span` (line, column and UTF-8 byte offsets)."""
        try:
            modules = json.loads(self._engine().get_ast_as_json())
        except RuntimeError as exc:
            raise PolicyError(_message(exc)) from exc
        own = self._modules[0][0]
        tree = next((m["ast"] for m in modules if m.get("source", {}).get("file") == own), None)
        if not isinstance(tree, dict):
            raise PolicyError(f"the engine gave no syntax tree for {own}")
        return tree

    def _engine(self) -> Any:
        engines = _thread_engines()
        engine = engines.get(self._key)
        if engine is None:
            engine = engines[self._key] = self._build()
            if len(engines) > ENGINES_PER_THREAD:
                engines.popitem(last=False)
        else:
            engines.move_to_end(self._key)
        return engine

    def evaluate(
        self,
        query: str,
        input: Mapping[str, object],
        data: Mapping[str, object] | None = None,
        references: Mapping[str, object] | None = None,
    ) -> dict[str, Any]:
        """Evaluate `query` (a package path such as `data.policy`) and return its value as a dict.

        `references` is what `query_reference_value(name)` answers during this evaluation (name -> value).
        An undefined result is an empty dict: callers treat a missing rule as its fail-closed default.
        """
        engine = self._engine().clone()
        _THREAD.references = references
        try:
            if data:
                engine.add_data(dict(data))
            engine.set_input(dict(input))
            # Through JSON so that Rego sets arrive as lists, like every other JSON value the callers handle.
            result = json.loads(engine.eval_query_as_json(query))
        except RuntimeError as exc:
            raise PolicyError(_message(exc)) from exc
        finally:
            _THREAD.references = None
        rows = result.get("result") or []
        if not rows:
            return {}
        value = rows[0]["expressions"][0]["value"]
        if not isinstance(value, dict):
            raise PolicyError(f"{query} is {type(value).__name__}, expected an object")
        return value


def run_rego_tests(policy: str, tests: str, data: Mapping[str, object] | None = None) -> dict[str, bool]:
    """Run the `test_*` rules of a Rego unit-test module against a policy; name -> passed."""
    if len(policy.encode()) > MAX_POLICY_BYTES:
        raise PolicyError(f"policy is {len(policy.encode())} bytes, at most {MAX_POLICY_BYTES}")
    modules = (("policy.rego", policy), ("reference_values.rego", REFERENCE_SHIM), ("policy_test.rego", tests))
    compiled = Policy(policy, modules, extension=False)
    package = _PACKAGE.search(tests)
    if package is None:
        raise PolicyError("test module has no package declaration")
    # A test rule that evaluates to false is undefined in the package value: list the names from the source.
    names = sorted(set(_TEST_RULE.findall(tests)))
    values = compiled.evaluate(f"data.{package.group(1)}", {}, data)
    return {name: values.get(name) is True for name in names}
