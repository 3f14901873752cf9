"""Reference values checked when they are provisioned (`POST /reference-value`, `kbs admin reference-value put`).

Reference values are strings; a policy may read some of them as numbers. The shipped SNP policy compares
REPORTED_TCB components with `to_number(minimum)` of `snp_min_tcb_*`, and Rego engines disagree on
non-canonical decimal text (regorus reads " 4" as 4 where OPA's `to_number` fails): such a value would make
the verdict depend on the engine. So a value that a shipped policy reads as a number must be canonical decimal
(digits only: no sign, space, leading zero, fraction or exponent), refused with 400 otherwise, and nothing is
stored. docs/oracles.md (`rego-to-number`) has the measured differences.

>>> check_reference_values("snp_min_tcb_tee", ["0", "12"])
>>> check_reference_values("snp_min_tcb_tee", ["+2"])
Traceback (most recent call last):
...
kbs.errors.KbsError: reference value snp_min_tcb_tee: '+2' is not a canonical decimal number ...
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..errors import KbsError

__all__ = ["NUMERIC_NAMES", "check_reference_values"]

# Names whose values the shipped policies read with to_number (policies/snp.rego, policies/az-snp-vtpm.rego).
NUMERIC_NAMES = re.compile(r"snp_min_tcb_(bootloader|tee|snp|microcode|fmc)")
_CANONICAL_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")


def check_reference_values(name: str, values: Sequence[str]) -> None:
    """Raise KbsError (400 InvalidRequest) naming the first value a policy could not read as intended."""
    if not NUMERIC_NAMES.fullmatch(name):
        return
    for value in values:
        if not _CANONICAL_DECIMAL.fullmatch(value):
            raise KbsError.invalid_request(
                f"reference value {name}: {value!r} is not a canonical decimal number (digits only, without sign, "
                "spaces, leading zeros, fraction or exponent); the policy reads it with to_number"
            )
