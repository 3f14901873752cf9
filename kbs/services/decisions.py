"""Decisions the broker remembers: every attestation (/attest) and resource (GET /resource) decision, with what
its policy judged (the input after the configured redactions, the reference values it asked for, the trust vector),
so that `kbs admin decisions`, `policy explain` and `policy impact` can answer from history.

A decision is recorded in the write transaction its protocol step makes anyway (the session's UPDATE, the audit
row): `DecisionLog` only builds the `DecisionRecord`, the step's `Writes` adds it. Old decisions are swept off the
protocol's path (`[decisions] retention_seconds`, `max_count`); `[decisions] record = false` records none.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from verifier.appraisal import ANNOTATIONS, Appraisal, Status

from ..api.schemas import DecisionDocument, DecisionInfo
from ..errors import KbsError
from ..settings import DecisionSettings
from ..storage import DecisionFilter, DecisionRecord, Store
from ..tables import Decision

__all__ = ["MAX_LIST", "REDACTED", "DecisionLog", "RecordingReferences", "decision_info", "redact"]

REDACTED = "<redacted>"
MAX_LIST = 1000
_DETAIL_CHARS = 2000


class RecordingReferences(Mapping[str, object]):
    """The reference values offered to a policy, remembering those it asked for (`query_reference_value` reads
    them by name): a decision records what its policy was answered, so a replay answers the same."""

    def __init__(self, values: Mapping[str, object]) -> None:
        self._values = values
        self.asked: dict[str, object] = {}

    def __getitem__(self, name: str) -> object:
        value = self._values.get(name)
        self.asked[name] = value
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _parse_pointer(pointer: str) -> list[str]:
    """RFC 6901 JSON pointer -> its reference tokens (`~1` is `/`, `~0` is `~`)."""
    if pointer and not pointer.startswith("/"):
        raise ValueError(f"redaction {pointer!r} is not a JSON pointer (it must start with '/')")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]


def redact(document: object, pointers: list[str]) -> object:
    """A copy of `document` with the member at each pointer replaced by "<redacted>" (`*` matches every member
    at its level); pointers that match nothing are ignored."""
    copy = json.loads(json.dumps(document))
    for pointer in pointers:
        _redact_at(copy, _parse_pointer(pointer))
    return copy


def _redact_at(node: object, tokens: list[str]) -> None:
    if not tokens:
        return
    head, rest = tokens[0], tokens[1:]
    if isinstance(node, dict):
        keys = list(node) if head == "*" else [head] if head in node else []
        for key in keys:
            if rest:
                _redact_at(node[key], rest)
            else:
                node[key] = REDACTED
    elif isinstance(node, list):
        indexes = range(len(node)) if head == "*" else [int(head)] if head.isdigit() and int(head) < len(node) else []
        for index in indexes:
            if rest:
                _redact_at(node[index], rest)
            else:
                node[index] = REDACTED


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class DecisionLog:
    def __init__(self, settings: DecisionSettings, store: Store) -> None:
        for pointer in settings.redact:
            _parse_pointer(pointer)  # a bad pointer stops the broker at start, not at its first decision
        self._settings = settings
        self._store = store

    @property
    def recording(self) -> bool:
        return self._settings.record

    # -- building the records of the protocol's steps ------------------------------------------------------------
    def _evidence_redacted(self, evidence: Mapping[str, object]) -> object:
        # No redactions configured (the default): no copy on the protocol's path.
        return redact(evidence, self._settings.redact) if self._settings.redact else dict(evidence)

    def _claims_redacted(self, claims: Mapping[str, object]) -> object:
        """EAR claims with the redactions applied to the annotated evidence of each submod."""
        if not self._settings.redact:
            return dict(claims)
        copy: Any = json.loads(json.dumps(dict(claims)))
        submods = copy.get("submods") if isinstance(copy, dict) else None
        for submod in submods.values() if isinstance(submods, dict) else ():
            if isinstance(submod, dict) and "ear.veraison.annotated-evidence" in submod:
                key = "ear.veraison.annotated-evidence"
                submod[key] = redact(submod[key], self._settings.redact)
        return copy

    def attestation(
        self, appraisal: Appraisal, policy: tuple[str, str], references: RecordingReferences, now: float
    ) -> DecisionRecord | None:
        """An appraisal that ended in a token: its outcome is the EAR status (denied unless affirming)."""
        if not self.recording:
            return None
        policy_id, source = policy
        return DecisionRecord(
            at=now,
            kind="attestation",
            outcome=appraisal.status.value,
            denied=appraisal.status != Status.AFFIRMING,
            tee=appraisal.tee,
            path=None,
            policy_id=policy_id,
            policy_sha256=_sha256(source),
            input=_json(self._evidence_redacted(appraisal.annotated_evidence)),
            reference_values=_json(references.asked),
            trust_vector=_json(dict(appraisal.vector)),
            detail=None,
        )

    def attestation_refused(
        self, tee: str, policy: tuple[str, str], outcome: str, detail: str, now: float
    ) -> DecisionRecord | None:
        """Evidence the verifier rejected (`rejected`) or a policy that failed (`error`): no claims to record."""
        if not self.recording:
            return None
        policy_id, source = policy
        return DecisionRecord(
            at=now,
            kind="attestation",
            outcome=outcome,
            denied=True,
            tee=tee,
            path=None,
            policy_id=policy_id,
            policy_sha256=_sha256(source),
            input=None,
            reference_values=None,
            trust_vector=None,
            detail=detail[:_DETAIL_CHARS],
        )

    def resource(
        self,
        path: str,
        claims: Mapping[str, object],
        policy: tuple[str, str],
        released: bool,
        detail: str | None,
        now: float,
    ) -> DecisionRecord | None:
        if not self.recording:
            return None
        policy_id, source = policy
        tee = _ear_tee(claims)
        return DecisionRecord(
            at=now,
            kind="resource",
            outcome="released" if released else "denied",
            denied=not released,
            tee=tee,
            path=path,
            policy_id=policy_id,
            policy_sha256=_sha256(source),
            input=_json(self._claims_redacted(claims)),
            reference_values=None,
            trust_vector=None,
            detail=None if detail is None else detail[:_DETAIL_CHARS],
        )

    # -- reading them back ---------------------------------------------------------------------------------------
    def _oldest_kept(self, now: float) -> float:
        return now - self._settings.retention_seconds

    def list(self, where: DecisionFilter, now: float) -> list[DecisionInfo]:
        """The newest matching decisions first (at most 1000); none older than the retention."""
        oldest = self._oldest_kept(now)
        since = oldest if where.since is None else max(where.since, oldest)
        limit = max(1, min(where.limit, MAX_LIST))
        rows = self._store.decisions(DecisionFilter(where.kind, where.denied, since, where.path, limit))
        return [decision_info(row, self.policy_version(row)) for row in rows]

    def policy_version(self, row: Decision) -> tuple[int, str] | None:
        """(version, source) of the stored policy that made a decision (the version numbers of `policy history`);
        None for a shipped policy. Found afterwards by the policy's id, digest and the decision's time, so the
        protocol's path reads no version."""
        stored_id = row.policy_id if row.kind == "resource" else f"attestation:{row.policy_id}"
        return self._store.policy_version_at(stored_id, row.policy_sha256, row.at)

    def kept(self, row: Decision, now: float) -> bool:
        """Whether a decision is within its retention (an older one is expired, even before the sweep removes it)."""
        return row.at >= self._oldest_kept(now)

    def row(self, decision_id: int, now: float) -> Decision:
        row = self._store.decision(decision_id)
        if row is None or not self.kept(row, now):
            raise KbsError.not_found(
                f"decision {decision_id} does not exist or has expired "
                f"(decisions are kept {self._settings.retention_seconds:g} s, at most {self._settings.max_count})"
            )
        return row

    def show(self, decision_id: int, now: float) -> DecisionDocument:
        row = self.row(decision_id, now)
        return DecisionDocument(
            **decision_info(row, self.policy_version(row)).model_dump(),
            input=None if row.input is None else json.loads(row.input),
            reference_values=None if row.reference_values is None else json.loads(row.reference_values),
            trust_vector=None if row.trust_vector is None else json.loads(row.trust_vector),
        )

    @property
    def sweep_interval(self) -> float:
        """A quarter of the retention, between 1 and 60 seconds."""
        return min(60.0, max(1.0, self._settings.retention_seconds / 4))

    def sweep(self, now: float) -> int:
        """Delete decisions past the retention time or beyond the newest `max_count`."""
        return self._store.sweep_decisions(self._oldest_kept(now), self._settings.max_count)


def _ear_tee(claims: Mapping[str, object]) -> str | None:
    submods = claims.get("submods")
    cpu0 = submods.get("cpu0") if isinstance(submods, dict) else None
    evidence = cpu0.get("ear.veraison.annotated-evidence") if isinstance(cpu0, dict) else None
    if not isinstance(evidence, dict):
        return None
    return next((str(key) for key in evidence if key not in ANNOTATIONS), None)


def decision_info(row: Decision, version: tuple[int, str] | None = None) -> DecisionInfo:
    """The row's summary; `version` is `DecisionLog.policy_version`'s answer."""
    assert row.id is not None
    return DecisionInfo(
        id=row.id,
        at=row.at,
        kind=row.kind,
        outcome=row.outcome,
        denied=row.denied,
        tee=row.tee,
        path=row.path,
        policy_id=row.policy_id,
        policy_sha256=row.policy_sha256,
        policy_version=None if version is None else version[0],
        detail=row.detail,
    )
