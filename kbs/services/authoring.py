"""Policy authoring on recorded decisions: why a decision went as it did (`explain`), and which recorded decisions a
new policy would decide otherwise (`impact`), both worked out by the engine (`verifier.explain`) on what the decision
recorded: its input, and the reference values its policy was answered.

A replay answers `query_reference_value` with what the recorded decision's policy was answered; a name the new
policy asks for that the old one did not is answered from the reference values stored now. A claim redacted when
it was recorded replays as "<redacted>".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import policies as shipped
from verifier.appraisal import appraise
from verifier.explain import AttestationExplanation, ResourceExplanation, explain_attestation, explain_resource, render
from verifier.rego import Policy, PolicyError

from ..api.schemas import DecisionExplanation, ImpactReport, PolicyFlip
from ..errors import KbsError
from ..storage import DecisionFilter, Store
from ..tables import Decision
from .decisions import MAX_LIST, DecisionLog, decision_info
from .policies import compiled

__all__ = ["PolicyAuthoring"]

# A replay looks at the newest decisions only: impact is a preview, not a batch job.
MAX_REPLAY = 10_000


def resource_data(path: str) -> dict[str, object]:
    """The resource policy's `data` for a path (trustee's resource plugin shape)."""
    return {"plugin": "resource", "resource-path": path.split("/"), "query": {}}


class PolicyAuthoring:
    def __init__(self, store: Store, decisions: DecisionLog) -> None:
        self._store = store
        self._decisions = decisions

    # -- explain --------------------------------------------------------------------------------------------------
    def _source_of(self, row: Decision) -> str:
        """The Rego that made a decision: its version in the policy's history, else a stored or shipped policy
        with its digest."""
        version = self._decisions.policy_version(row)
        if version is not None:
            return version[1]
        for stored in self._store.list_policies():
            if stored.sha256 == row.policy_sha256:
                return stored.source
        for name in shipped.names():
            source = shipped.load(name)
            if hashlib.sha256(source.encode()).hexdigest() == row.policy_sha256:
                return source
        raise KbsError.not_found(
            f"decision {row.id} was made by policy {row.policy_id} with sha256 {row.policy_sha256}, which is no "
            "longer stored: explain its input locally (kbs admin policy explain --input FILE POLICY.rego)"
        )

    def explain(self, decision_id: int, now: float) -> DecisionExplanation:
        row = self._decisions.row(decision_id, now)
        info = decision_info(row, self._decisions.policy_version(row))
        if row.input is None:
            text = f"no policy judged claims: the evidence was refused ({row.outcome}): {row.detail}"
            return DecisionExplanation(decision=info, explanation=None, text=text)
        try:
            explanation = _explained(compiled(self._source_of(row)), row, json.loads(row.reference_values or "{}"))
        except PolicyError as exc:
            raise KbsError.invalid_request(f"the policy fails on decision {row.id}'s input: {exc}") from exc
        return DecisionExplanation(decision=info, explanation=explanation.to_json(), text=render(explanation))

    # -- impact ---------------------------------------------------------------------------------------------------
    def impact(self, kind: str, target: str | None, source: str, since: float | None, now: float) -> ImpactReport:
        """Replay the recorded decisions `source` would govern as the `kind` policy `target` (an attestation
        policy id or TEE; a resource scope) and list those it decides otherwise, each explained under `source`."""
        try:
            policy = Policy.compile(source)
        except PolicyError as exc:
            raise KbsError.invalid_request(f"policy does not compile: {exc}") from exc
        rows = self._store.decisions(DecisionFilter(kind=kind, since=since, limit=MAX_REPLAY))
        current = {r.name: r.value for r in self._store.reference_values(now)}
        stored_now: dict[str, list[str]] = {}
        for name, value in current.items():
            stored_now.setdefault(name, []).append(value)
        replayed = skipped = 0
        flips: list[PolicyFlip] = []
        for row in rows:
            if not self._decisions.kept(row, now) or not _governed(row, kind, target):
                continue
            if row.input is None:
                skipped += 1  # evidence refused before any policy: nothing to replay
                continue
            replayed += 1
            references = {**stored_now, **json.loads(row.reference_values or "{}")}
            outcome, error = _replay(policy, row, references)
            if outcome == row.outcome:
                continue
            if error is not None:
                info = decision_info(row, self._decisions.policy_version(row))
                flip = PolicyFlip(decision=info, before=row.outcome, after=outcome, explanation=None, text=error)
            else:
                explanation = _explained(policy, row, references)
                flip = PolicyFlip(
                    decision=decision_info(row, self._decisions.policy_version(row)),
                    before=row.outcome,
                    after=outcome,
                    explanation=explanation.to_json(),
                    text=render(explanation),
                )
            flips.append(flip)
            if len(flips) == MAX_LIST:
                break
        return ImpactReport(replayed=replayed, skipped=skipped, flips=flips)


def _governed(row: Decision, kind: str, target: str | None) -> bool:
    """Whether the policy would have made this decision, set as `target`: an attestation policy id (a TEE's own
    policy, or `default` for the TEEs without one; none: every attestation decision), or a resource scope (none:
    the global resource policy), which governs the paths under it that no more specific policy governed."""
    if kind == "attestation":
        if target is None or target == row.tee:
            return True
        defaults = ("default", "default_cpu")
        return target in defaults and row.policy_id in (*defaults, f"default_{row.tee}")
    scope = [] if target is None else target.strip("/").split("/")
    path = (row.path or "").split("/")
    decided_by = [] if row.policy_id in ("resource", "default") else row.policy_id.removeprefix("resource:").split("/")
    return path[: len(scope)] == scope and len(decided_by) <= len(scope)


def _replay(policy: Policy, row: Decision, references: Mapping[str, object]) -> tuple[str, str | None]:
    """The outcome `policy` gives the recorded input (and the error, when it fails to decide)."""
    document: Any = json.loads(row.input or "{}")
    try:
        if row.kind == "attestation":
            return appraise(policy, row.policy_id, document, references).status.value, None
        result = policy.evaluate("data.policy", document, resource_data(row.path or "//"), references)
    except PolicyError as exc:
        return "error", f"the policy fails on this input: {exc}"
    return ("released" if result.get("allow") is True else "denied"), None


def _explained(
    policy: Policy, row: Decision, references: Mapping[str, object]
) -> ResourceExplanation | AttestationExplanation:
    document: Any = json.loads(row.input or "{}")
    if row.kind == "attestation":
        return explain_attestation(policy, row.policy_id, document, references)
    return explain_resource(policy, document, resource_data(row.path or "//"), references)
