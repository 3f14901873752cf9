"""The in-guest attestation agent: TEE detection, evidence collection, the KBS client (RCAR handshake).

Imports stay light: no web framework, no ORM, no pydantic, nothing of the broker (`kbs`). It speaks the protocol
through the wire module `kbs_protocol` and takes the report-data binding from `verifier.binding`; each command
imports only what it uses (tests/unit/test_slim_imports.py holds it to that).
"""

__all__: list[str] = []
