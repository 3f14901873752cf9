"""Veritee's verifier: evidence parsing and verification down to vendor roots, Rego appraisal, EAR tokens.

A pure library: no web framework, no ORM, no file, clock or network access (tests/unit/test_verifier_purity.py
checks it); the time, the collateral and the sources of collateral arrive in `Options`. Only `verifier.cli`, the
command-line edge, reads files and the clock.

    verify(tee, evidence, options) -> Verified            parse and verify evidence down to the vendor roots
    attest(tee, evidence, *, binding, options, policy, policy_id, reference_values) -> Appraisal
                                                          verify against the protocol binding, then appraise
    ear.ear_claims(appraisal, ...) / ear.sign / ear.verify_token -> Ear     EAR attestation results
    registry.lookup(tee) -> Tee                           what a TEE declares (bindings, sources, policy)

>>> from datetime import UTC, datetime
>>> import verifier
>>> r = verifier.verify("sample", b'{"svn": "1", "report_data": "AAE="}', verifier.Options(at=datetime.now(UTC)))
>>> r.claims["report_data"]
'0001'

Adding a TEE (docs/adding-a-tee.md says the same, with the reasons):
 1. `verifier/<tee>/`: one package with a pipeline per stage (`_abi`/`_quote`: bytes -> frozen dataclasses, format
    errors only; `_verify`: signatures and chains to roots pinned in `roots/` through `verifier._x509`;
    `_claims`: typed claims with one `to_json()`), its bindings in `_binding.py` (`report_data(runtime_digest)`
    and `init_data(init_data_digest)` -> the exact field values), and `TEE = Tee(...)` in its `__init__`
    declaring verify, the two binding rules, the `Options` sources it reads and its default policy.
 2. One line in `verifier.registry.TEES`. Nothing else lists TEEs: the broker, the agent's report data and the
    CLI's `--tee` choices all come from the registry, and an unknown TEE is unsupported_format everywhere.
 3. A source of collateral it must fetch: a Protocol in `verifier/sources.py`, one typed field in `Options`,
    the client in `kbs/collateral/` and its construction in `kbs/verification.py`.
 4. `policies/<tee>.rego` (fail closed: `default` rules give no trust) with `policies/<tee>_test.rego`.
 5. The attester: `attestation-agent/attestation_agent/attesters/<tee>.py` and its place in `DETECTION_ORDER`.
 6. Tests: real vectors with provenance, named negative datasets asserting reason codes, a CLI test.
"""

from __future__ import annotations

from ._attest import Binding, attest, verify
from .appraisal import Appraisal, Status
from .errors import Error, FormatError, Reason, SourceError, VerificationError, VerifierError
from .options import Options
from .registry import DEVICE_TEES, TEES, Tee, expected_init_data, expected_report_data, lookup
from .result import Verified

__all__ = [
    "DEVICE_TEES",
    "TEES",
    "Appraisal",
    "Binding",
    "Error",
    "FormatError",
    "Options",
    "Reason",
    "SourceError",
    "Status",
    "Tee",
    "VerificationError",
    "Verified",
    "VerifierError",
    "attest",
    "expected_init_data",
    "expected_report_data",
    "lookup",
    "verify",
]
