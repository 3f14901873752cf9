"""The in-guest attestation agent: TEE detection, evidence collection, the KBS client (RCAR handshake).

Imports stay light: no web framework, no ORM. The only broker code it uses is `kbs.protocol` (wire models).
"""

__all__: list[str] = []
