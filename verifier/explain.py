"""Why a Rego policy decided what it did, for any policy, from the engine itself rather than from its text.

The engine's syntax tree (`Policy.syntax_tree`) names every definition of a rule and the statements of each body.
For each body the explanation compiles probe rules next to the policy, in its package and with its imports, and
evaluates them on the same input, data and reference values:

- `holds_k`: statements 1..k of the body hold (for some binding). The first k that does not is the failing
  condition: the body's statements before it held, this one did not.
- `values_k`: under each binding of statements 1..k-1, the values of the operands statement k compares (both
  sides of `==`, `!=`, `<`..., `in`; the collection of `some ... in` and `every`; the arguments of a call; the
  term of `not`), each as `[value]`, or `[]` when undefined.

A condition that is a rule of the policy (`known_boot`, `not debug`) is explained in turn, a few levels deep. The
definition that produced the rule's value is the first whose body holds (the `default` when none does).

For an attestation policy (`explain_attestation`) the decision is the AR4SI vector its `trust_claims` yields, the
EAR status of that vector, and each claim's rule explained; for a resource policy (`explain_resource`), `allow`.

>>> from verifier.rego import Policy
>>> p = Policy.compile("package policy\\nimport rego.v1\\ndefault allow := false\\nallow if input.x == 1\\n")
>>> e = explain_resource(p, {"x": 2}, {})
>>> e.allowed, e.rule.decided_by, e.rule.definitions[1].failed.compared
(False, [3], [[{'expr': 'input.x', 'value': 2}, {'expr': '1', 'value': 1}]])
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from .appraisal import AR4SI_CLAIMS, status_of, trust_vector
from .errors import PolicyError
from .rego import Policy

__all__ = [
    "AttestationExplanation",
    "Condition",
    "Definition",
    "ResourceExplanation",
    "RuleExplanation",
    "explain",
    "explain_attestation",
    "explain_resource",
    "explain_rule",
    "render",
]

_PROBE = "veritee_explain"
_MODULE = "veritee_explain.rego"
_MAX_DEPTH = 3
_MAX_BINDINGS = 5
_SCALARS = frozenset({"String", "RawString", "Number", "Bool", "Null"})


@dataclass(frozen=True)
class Condition:
    """A statement of a rule body, and whether it held after the statements before it."""

    line: int
    text: str
    holds: bool
    # Under each binding of the statements before it (at most 5): every operand it compares, with its value
    # (no "value" key when the operand is undefined).
    compared: list[list[dict[str, Any]]] = field(default_factory=list)
    # The policy's rules this statement refers to, with their values.
    rules: dict[str, Any] = field(default_factory=dict)
    # When the statement is (or negates) a rule of the policy: why that rule came out as it did.
    because: RuleExplanation | None = None


@dataclass(frozen=True)
class Definition:
    """One definition (or `else` branch) of a rule: its head as written, and the first condition that failed."""

    line: int
    text: str
    default: bool
    holds: bool
    failed: Condition | None = None


@dataclass(frozen=True)
class RuleExplanation:
    rule: str
    defined: bool
    value: Any
    # The lines of the definitions that produced the value (the default's when no body held).
    decided_by: list[int]
    definitions: list[Definition]


@dataclass(frozen=True)
class ResourceExplanation:
    allowed: bool
    rule: RuleExplanation
    kind: str = "resource"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ClaimExplanation:
    claim: str
    value: int
    rule: RuleExplanation | None


@dataclass(frozen=True)
class AttestationExplanation:
    status: str
    trust_vector: dict[str, int]
    claims: list[ClaimExplanation]
    trust_claims: RuleExplanation
    kind: str = "attestation"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# -- the syntax tree ---------------------------------------------------------------------------------------------


class _Source:
    """The policy's text, sliced by the engine's spans (UTF-8 byte offsets)."""

    def __init__(self, text: str) -> None:
        self._bytes = text.encode()

    def text(self, node: Mapping[str, Any]) -> str:
        span = _span(node)
        start, end = span["start"], span["end"]
        # regorus spans a string literal without its closing quote, and so a statement ending in one.
        while self._bytes[start:end].count(b'"') % 2 and self._bytes[end : end + 1] == b'"':
            end += 1
        return self._bytes[start:end].decode(errors="replace")

    def term(self, node: Mapping[str, Any]) -> str:
        """A term's text; a scalar literal written back from its value (its span may not cover its quotes)."""
        tag, inner = _inner(node)
        if tag in _SCALARS:
            return json.dumps(inner["value"])
        return self.text(node)

    def first_line(self, node: Mapping[str, Any]) -> str:
        span = _span(node)
        end = self._bytes.find(b"\n", span["start"])
        end = span["end"] if end < 0 else min(end, span["end"])
        return self._bytes[span["start"] : end].decode(errors="replace").strip()


def _inner(node: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """A tagged node (`{"Var": {...}}`) as (tag, fields); an untagged one (a span, a body) as ("", itself)."""
    if len(node) == 1:
        tag, inner = next(iter(node.items()))
        if isinstance(inner, Mapping):
            return tag, inner
    return "", node


def _span(node: Mapping[str, Any]) -> Mapping[str, Any]:
    _tag, inner = _inner(node)
    span = inner.get("span", inner)
    assert isinstance(span, Mapping)
    return span


def _var(node: Mapping[str, Any] | None) -> str | None:
    if node is None:
        return None
    tag, inner = _inner(node)
    return str(inner["value"]) if tag == "Var" else None


@dataclass(frozen=True)
class _Rule:
    name: str
    function: bool
    defaults: list[Mapping[str, Any]]
    specs: list[Mapping[str, Any]]


def _rules(tree: Mapping[str, Any], source: _Source) -> dict[str, _Rule]:
    found: dict[str, _Rule] = {}
    for node in tree.get("rules", []):
        tag, inner = _inner(node)
        if tag == "Default":
            name = _var(inner["refr"]) or source.text(inner["refr"])
            rule = found.setdefault(name, _Rule(name, False, [], []))
            rule.defaults.append(inner)
        elif tag == "Spec":
            head_tag, head = _inner(inner["head"])
            name = _var(head["refr"]) or source.text(head["refr"])
            rule = found.setdefault(name, _Rule(name, head_tag == "Func", [], []))
            rule.specs.append(inner)
    return found


def _operands(literal: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The terms a statement compares, whose values explain why it did not hold."""
    tag, inner = _inner(literal)
    if tag == "Expr":
        expr_tag, expr = _inner(inner["expr"])
        if expr_tag in ("BoolExpr", "ArithExpr", "BinExpr"):
            return [expr["lhs"], expr["rhs"]]
        if expr_tag == "AssignExpr":
            # `x := term` binds x: only the term has a value; `a = b` unifies two terms that may both have one.
            return [expr["rhs"]] if expr["op"] == "ColEq" else [expr["lhs"], expr["rhs"]]
        if expr_tag == "Membership":
            return [t for t in (expr.get("key"), expr["value"], expr["collection"]) if t is not None]
        if expr_tag == "Call":
            return [inner["expr"], *expr["params"]]
        return [inner["expr"]]
    if tag == "NotExpr":
        return [inner["expr"]]
    if tag == "SomeIn":
        return [inner["collection"]]
    if tag == "Every":
        return [inner["domain"]]
    return []


def _vars(node: object) -> set[str]:
    """Every variable name a node mentions."""
    names: set[str] = set()
    if isinstance(node, Mapping):
        if "Var" in node and isinstance(node["Var"], Mapping):
            names.add(str(node["Var"]["value"]))
        for value in node.values():
            names |= _vars(value)
    elif isinstance(node, list):
        for value in node:
            names |= _vars(value)
    return names


def _referenced_rule(literal: Mapping[str, Any]) -> str | None:
    """The rule a statement is, or negates (`known_boot`, `not debug`), if it is a bare rule name."""
    tag, inner = _inner(literal)
    if tag in ("Expr", "NotExpr"):
        return _var(inner["expr"])
    return None


# -- probing ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Probes:
    """A policy's probe rules (see the module's docstring), built once per compiled policy: the module that holds
    every probe that compiles, and the names of those that do not (a prefix of a body that only compiles whole:
    Rego orders a body's statements by the variables they bind)."""

    source: _Source
    query: str
    rules: dict[str, _Rule]
    index: dict[str, int]  # rule name -> its number in the probe names
    module: str
    policy: Policy
    dropped: frozenset[str]


def _probe_rules(source: _Source, rules: dict[str, _Rule], index: dict[str, int]) -> dict[str, str]:
    probes: dict[str, str] = {}
    for name, r in index.items():
        bodies = [body for spec in rules[name].specs for body in spec["bodies"]]
        for b, body in enumerate(bodies):
            statements = [source.text(s) for s in body["query"]["stmts"]]
            for k, statement in enumerate(body["query"]["stmts"]):
                holds = f"{_PROBE}_h_{r}_{b}_{k}"
                probes[holds] = f"{holds} if {{\n{chr(10).join(statements[: k + 1])}\n}}"
                terms = [source.term(t) for t in _operands(statement["literal"])]
                if terms:
                    values = f"{_PROBE}_v_{r}_{b}_{k}"
                    compared = ", ".join(f"[{_PROBE}_x | {_PROBE}_x := {t}]" for t in terms)
                    prefix = "\n".join(statements[:k]) or "true"
                    probes[values] = f"{values} contains [{compared}] if {{\n{prefix}\n}}"
    return probes


@lru_cache(maxsize=64)
def _probes(policy: Policy) -> _Probes:
    source = _Source(policy.source)
    tree = policy.syntax_tree()
    package = source.text(tree["package"]).split(None, 1)[1].strip()
    imports = [source.text(node) for node in tree.get("imports", [])]
    if "import rego.v1" not in imports:
        imports.append("import rego.v1")
    header = "\n".join([f"package {package}", *imports])
    rules = _rules(tree, source)
    index = {name: r for r, name in enumerate(n for n, rule in rules.items() if not rule.function)}
    probes = _probe_rules(source, rules, index)
    dropped: set[str] = set()
    try:
        probe_policy = policy.with_module(_MODULE, f"{header}\n\n{chr(10).join(probes.values())}\n")
    except PolicyError:
        for name, rule in probes.items():
            try:
                policy.with_module(_MODULE, f"{header}\n\n{rule}\n")
            except PolicyError:
                dropped.add(name)
        kept = "\n".join(rule for name, rule in probes.items() if name not in dropped)
        probe_policy = policy.with_module(_MODULE, f"{header}\n\n{kept}\n")
    return _Probes(source, f"data.{package}", rules, index, header, probe_policy, frozenset(dropped))


class _Explainer:
    def __init__(
        self,
        policy: Policy,
        input: Mapping[str, object],
        data: Mapping[str, object] | None,
        references: Mapping[str, object] | None,
    ) -> None:
        probes = _probes(policy)
        self._source = probes.source
        self._rules = probes.rules
        self._index = probes.index
        self.dropped = set(probes.dropped)
        # One evaluation answers the policy's rules and every probe.
        try:
            everything = probes.policy.evaluate(probes.query, input, data, references)
        except PolicyError:
            # A probe that fails to evaluate on this input (the policy itself evaluates, below, or raises): the
            # probes one by one, dropping those that fail.
            everything = policy.evaluate(probes.query, input, data, references)
            for name, rule in _probe_rules(self._source, self._rules, self._index).items():
                try:
                    one = policy.with_module(_MODULE, f"{probes.module}\n\n{rule}\n")
                    answer = one.evaluate(probes.query, input, data, references)
                    everything |= {name: answer[name]} if name in answer else {}
                except PolicyError:
                    self.dropped.add(name)
        self.values = {k: v for k, v in everything.items() if not k.startswith(_PROBE)}
        self._results = {k: v for k, v in everything.items() if k.startswith(_PROBE)}

    def rule(self, name: str, depth: int = 0, seen: frozenset[str] = frozenset()) -> RuleExplanation:
        rule = self._rules.get(name)
        defined = name in self.values
        value = self.values.get(name)
        if rule is None or rule.function:
            return RuleExplanation(name, defined, value, [], [])
        r = self._index[name]
        results, dropped = self._results, self.dropped
        definitions = [
            Definition(line=_span(d)["line"], text=self._source.first_line(d), default=True, holds=True)
            for d in rule.defaults
        ]
        decided_by: list[int] = []
        b = 0
        for spec in rule.specs:
            if not spec["bodies"]:  # a definition with no body (`t := {...}`) holds as it stands
                line = _span(spec)["line"]
                definitions.append(Definition(line=line, text=self._source.first_line(spec), default=False, holds=True))
                decided_by.append(line)
            # In an else chain only the first body that holds counts; a partial rule collects from every definition.
            chain_decided = False
            for i, body in enumerate(spec["bodies"]):
                statements = body["query"]["stmts"]
                # The whole body is its last prefix, which compiles as the policy did.
                holds = not statements or f"{_PROBE}_h_{r}_{b}_{len(statements) - 1}" in results
                failed: Condition | None = None
                for k, statement in enumerate(statements if not holds else []):
                    # A prefix that does not compile on its own says nothing: the next statement is tried.
                    prefix = f"{_PROBE}_h_{r}_{b}_{k}"
                    if prefix not in results and prefix not in dropped:
                        compared = results.get(f"{_PROBE}_v_{r}_{b}_{k}")
                        failed = self._condition(statement, compared, depth, seen | {name})
                        break
                b += 1
                node = spec if i == 0 else body
                line = _span(node)["line"]
                text = self._source.first_line(node)
                definitions.append(Definition(line, text, default=False, holds=holds, failed=failed))
                if holds and not chain_decided:
                    decided_by.append(line)
                    chain_decided = True
        if not decided_by and rule.defaults:
            decided_by = [_span(rule.defaults[0])["line"]]
        return RuleExplanation(name, defined, value, decided_by, definitions)

    def _condition(self, statement: Mapping[str, Any], compared: object, depth: int, seen: frozenset[str]) -> Condition:
        literal = statement["literal"]
        terms = [self._source.term(t) for t in _operands(literal)]
        bindings: list[list[dict[str, Any]]] = []
        for row in compared if isinstance(compared, list) else []:
            operands: list[dict[str, Any]] = []
            for term, value in zip(terms, row, strict=False):
                operands.append({"expr": term, "value": value[0]} if value else {"expr": term})
            bindings.append(operands)
            if len(bindings) == _MAX_BINDINGS:
                break
        rules = {
            name: self.values.get(name)
            for name in sorted(_vars(literal))
            if name in self.values and name != _referenced_rule(literal)
        }
        because = None
        referenced = _referenced_rule(literal)
        if referenced in self._rules and referenced not in seen and depth < _MAX_DEPTH:
            because = self.rule(referenced, depth + 1, seen)
            bindings = []  # the rule's own explanation says it
        return Condition(
            line=_span(statement)["line"],
            text=self._source.text(statement),
            holds=False,
            compared=bindings,
            rules=rules,
            because=because,
        )


def explain_resource(
    policy: Policy,
    input: Mapping[str, object],
    data: Mapping[str, object] | None,
    references: Mapping[str, object] | None = None,
) -> ResourceExplanation:
    """Why a resource policy's `allow` is what it is for this input (the EAR claims) and data."""
    explainer = _Explainer(policy, input, data, references)
    return ResourceExplanation(allowed=explainer.values.get("allow") is True, rule=explainer.rule("allow"))


def explain_attestation(
    policy: Policy,
    policy_id: str,
    input: Mapping[str, object],
    references: Mapping[str, object] | None = None,
) -> AttestationExplanation:
    """The trust vector an attestation policy yields for this annotated evidence, its EAR status, and the rule
    behind each claim (trust_claims' member, when it names a rule of the policy)."""
    explainer = _Explainer(policy, input, None, references)
    vector = trust_vector(policy_id, explainer.values.get("trust_claims"))
    claims = []
    members = _trust_claims_members(explainer)
    for claim in AR4SI_CLAIMS:
        rule = members.get(claim)
        claims.append(ClaimExplanation(claim, vector[claim], explainer.rule(rule) if rule else None))
    return AttestationExplanation(
        status=status_of(vector).value,
        trust_vector=vector,
        claims=claims,
        trust_claims=explainer.rule("trust_claims"),
    )


def explain_rule(
    policy: Policy,
    rule: str,
    input: Mapping[str, object],
    data: Mapping[str, object] | None = None,
    references: Mapping[str, object] | None = None,
) -> RuleExplanation:
    """Why any rule of a policy has the value it has."""
    return _Explainer(policy, input, data, references).rule(rule)


def explain(
    policy: Policy,
    input: Mapping[str, object],
    data: Mapping[str, object] | None = None,
    references: Mapping[str, object] | None = None,
    policy_id: str = "policy",
) -> ResourceExplanation | AttestationExplanation:
    """An attestation policy's explanation when the policy defines `trust_claims`, else a resource policy's."""
    if "trust_claims" in _rules(policy.syntax_tree(), _Source(policy.source)):
        return explain_attestation(policy, policy_id, input, references)
    return explain_resource(policy, input, data, references)


def _trust_claims_members(explainer: _Explainer) -> dict[str, str]:
    """claim -> the rule named by `trust_claims := {"<claim>": <rule>, ...}` (trustee's policies' shape)."""
    rule = explainer._rules.get("trust_claims")
    members: dict[str, str] = {}
    for spec in rule.specs if rule else []:
        _tag, head = _inner(spec["head"])
        assign = head.get("assign")
        tag, value = _inner(assign["value"]) if assign else ("", {})
        if tag != "Object":
            continue
        for _where, key, member in value["fields"]:
            key_tag, key_node = _inner(key)
            name = _var(member)
            if key_tag == "String" and name in explainer._rules:
                members[str(key_node["value"])] = name
    return members


# -- text for people ---------------------------------------------------------------------------------------------


def _show(value: object, limit: int = 200) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _render_rule(rule: RuleExplanation, indent: str, out: list[str]) -> None:
    value = _show(rule.value) if rule.defined else "undefined"
    texts = {d.line: d.text for d in rule.definitions}
    decided = "; ".join(f"line {n}: {texts.get(n, '')}" for n in rule.decided_by) or "no definition held"
    out.append(f"{indent}{rule.rule} = {value}  (decided by {decided})")
    for definition in rule.definitions:
        if definition.default:
            continue
        mark = "held" if definition.holds else "did not hold"
        out.append(f"{indent}  line {definition.line}: {definition.text}  [{mark}]")
        condition = definition.failed
        if condition is None:
            continue
        out.append(f"{indent}    false: {condition.text}  (line {condition.line})")
        for binding in condition.compared:
            for operand in binding:
                shown = _show(operand["value"]) if "value" in operand else "undefined"
                out.append(f"{indent}      {operand['expr']} = {shown}")
        for name, rule_value in condition.rules.items():
            if not any(o["expr"] == name for b in condition.compared for o in b):
                out.append(f"{indent}      where {name} = {_show(rule_value)}")
        if condition.because is not None:
            _render_rule(condition.because, indent + "      ", out)


def render(explanation: ResourceExplanation | AttestationExplanation) -> str:
    """The explanation as indented text."""
    out: list[str] = []
    if isinstance(explanation, ResourceExplanation):
        out.append(f"resource policy: {'allowed' if explanation.allowed else 'denied'}")
        _render_rule(explanation.rule, "", out)
    else:
        out.append(f"ear.status: {explanation.status}")
        out.append("trust vector: " + ", ".join(f"{k}={v}" for k, v in explanation.trust_vector.items()))
        for claim in explanation.claims:
            tier = status_of({claim.claim: claim.value}).value
            if claim.rule is None:
                out.append(f"{claim.claim}: {claim.value} ({tier}; no rule of its own in trust_claims)")
            else:
                out.append(f"{claim.claim}: {claim.value} ({tier})")
                _render_rule(claim.rule, "  ", out)
    return "\n".join(out)
