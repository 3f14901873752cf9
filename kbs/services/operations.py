"""What the operations endpoints report: readiness (the database answers) and the token verification keys."""

from __future__ import annotations

from ..signing import KeyRing
from ..storage import Store

__all__ = ["Operations"]


class Operations:
    def __init__(self, store: Store, keys: KeyRing) -> None:
        self._store = store
        self._keys = keys

    def ready(self) -> None:
        """Return when the database answers; StorageError when it does not."""
        self._store.ping()

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return self._keys.jwks()
