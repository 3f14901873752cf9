"""What the operations endpoints report: readiness (the database answers, the KEK is still there) and the token
verification keys."""

from __future__ import annotations

from .._kek_sources import KeySourceError
from ..errors import KbsError
from ..sealing import Sealer
from ..signing import KeyRing
from ..storage import Store

__all__ = ["Operations"]


class Operations:
    def __init__(self, store: Store, keys: KeyRing, sealer: Sealer) -> None:
        self._store = store
        self._keys = keys
        self._sealer = sealer

    def ready(self) -> None:
        """Return when the database answers and the root KEK is still there (the file private and whole, the token
        present and answering: a replica started now would not start without it); StorageError or 503
        ServiceUnavailable when not."""
        try:
            self._sealer.check()
        except KeySourceError as exc:
            raise KbsError.unavailable(f"the key-encryption key is unavailable: {exc}") from exc
        self._store.ping()

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return self._keys.jwks()
