"""The runtime-data hash of the KBS protocol, negotiated in `extra-params` as trustee and guest-components do.

The guest lists what it can hash with in its /auth Request; the broker may name one in its Challenge; the guest
then binds the runtime data with that hash (default SHA-384) (trustee kbs/src/attestation/mod.rs,
guest-components kbs_protocol/src/client/rcar_client.rs):

    Request.extra-params    {"supported-hash-algorithms": ["sha256", "sha384", "sha512"]}   (or "" from old guests)
    Challenge.extra-params  {"selected-hash-algorithm": "sha512"}   or ""  (then SHA-384)

trustee's built-in attestation service always answers "" and hashes with SHA-384 (SHA-512 only for IBM SE);
Intel Trust Authority selects SHA-512 for TDX and SHA-256 for SGX. Veritee's broker answers "" like trustee's
built-in service, and refuses at /auth a guest whose list lacks SHA-384 (trustee would fail it later, at /attest,
with a report-data mismatch). Veritee's agent sends the list and honours a selection, so it works with all three.

Errors are NegotiationError, a ProtocolError naming the `extra-params` member.

>>> selected_hash_algorithm({"selected-hash-algorithm": "SHA512"}), selected_hash_algorithm("")
('sha512', 'sha384')
>>> challenge_extra_params({"supported-hash-algorithms": ["sha256", "sha384", "sha512"]})
''
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

from ._errors import ProtocolError

__all__ = [
    "DEFAULT_HASH_ALGORITHM",
    "HASH_ALGORITHMS",
    "SELECTED_HASH_ALGORITHM_KEY",
    "SUPPORTED_HASH_ALGORITHMS_KEY",
    "NegotiationError",
    "challenge_extra_params",
    "hash_runtime_data",
    "request_extra_params",
    "selected_hash_algorithm",
    "supported_hash_algorithms",
]

SUPPORTED_HASH_ALGORITHMS_KEY = "supported-hash-algorithms"
SELECTED_HASH_ALGORITHM_KEY = "selected-hash-algorithm"
DEFAULT_HASH_ALGORITHM = "sha384"
# kbs-types HashAlgorithm::list_all(), in its order and spelling (serde lowercase).
HASH_ALGORITHMS: Mapping[str, Callable[[bytes], bytes]] = {
    "sha256": lambda data: hashlib.sha256(data).digest(),
    "sha384": lambda data: hashlib.sha384(data).digest(),
    "sha512": lambda data: hashlib.sha512(data).digest(),
}
MAX_LISTED = 16


class NegotiationError(ProtocolError):
    """extra-params that name no usable hash algorithm."""


def request_extra_params() -> dict[str, list[str]]:
    """The guest's /auth extra-params: every hash it can bind with."""
    return {SUPPORTED_HASH_ALGORITHMS_KEY: list(HASH_ALGORITHMS)}


def selected_hash_algorithm(extra_params: object) -> str:
    """The guest's reading of the Challenge's extra-params: the selected algorithm (case-insensitive), or SHA-384
    when none is selected ("" or an object without the key, as trustee's built-in service answers)."""
    if not isinstance(extra_params, Mapping) or SELECTED_HASH_ALGORITHM_KEY not in extra_params:
        return DEFAULT_HASH_ALGORITHM
    value = extra_params[SELECTED_HASH_ALGORITHM_KEY]
    field = f"extra-params.{SELECTED_HASH_ALGORITHM_KEY}"
    if not isinstance(value, str):
        raise NegotiationError(field, f"is {value!r}, expected a string")
    name = value.lower()
    if name not in HASH_ALGORITHMS:
        raise NegotiationError(field, f"is {value!r}, expected one of {list(HASH_ALGORITHMS)}")
    return name


def supported_hash_algorithms(extra_params: object) -> tuple[str, ...] | None:
    """The broker's reading of the Request's extra-params: the listed algorithms (lower-cased, as trustee reads
    them; names it does not know are kept and ignored later), or None when the guest lists none (old guests send
    "" or nothing)."""
    if extra_params is None or extra_params == "":
        return None
    if not isinstance(extra_params, Mapping):
        raise NegotiationError(
            "extra-params", f"is {type(extra_params).__name__}, expected an object or an empty string"
        )
    if SUPPORTED_HASH_ALGORITHMS_KEY not in extra_params:
        return None
    listed = extra_params[SUPPORTED_HASH_ALGORITHMS_KEY]
    field = f"extra-params.{SUPPORTED_HASH_ALGORITHMS_KEY}"
    if not isinstance(listed, list) or not all(isinstance(name, str) for name in listed):
        raise NegotiationError(field, f"is {listed!r}, expected an array of strings")
    if len(listed) > MAX_LISTED:
        raise NegotiationError(field, f"lists {len(listed)} names, at most {MAX_LISTED}")
    return tuple(name.lower() for name in listed)


def challenge_extra_params(request_params: object) -> str:
    """The broker's Challenge extra-params for this Request's: "" (SHA-384, as trustee's built-in service), or
    NegotiationError when the guest cannot hash with SHA-384."""
    listed = supported_hash_algorithms(request_params)
    if listed is not None and DEFAULT_HASH_ALGORITHM not in listed:
        raise NegotiationError(
            f"extra-params.{SUPPORTED_HASH_ALGORITHMS_KEY}",
            f"is {list(listed)}: this broker binds the runtime data with {DEFAULT_HASH_ALGORITHM}, which the guest "
            "does not list",
        )
    return ""


def hash_runtime_data(algorithm: str, canonical: bytes) -> bytes:
    """The runtime digest of JCS-canonical runtime data with a negotiated algorithm (32, 48 or 64 bytes)."""
    try:
        return HASH_ALGORITHMS[algorithm](canonical)
    except KeyError:
        raise NegotiationError("hash algorithm", f"is {algorithm!r}, expected one of {list(HASH_ALGORITHMS)}") from None
