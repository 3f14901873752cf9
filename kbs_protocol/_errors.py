"""The wire module's one error: a message, URI or document that does not follow the protocol."""

from __future__ import annotations

__all__ = ["ProtocolError"]


class ProtocolError(ValueError):
    """Input that does not follow the KBS protocol (or ocicrypt's key-provider protocol).

    `field` names where, in wire spelling (`runtime-data.nonce`, `body`, `resource`), and `problem` what was found
    and expected; `str()` is `"<field>: <problem>"`. A ValueError, so callers that caught ValueError still do.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field = field
        self.problem = problem
