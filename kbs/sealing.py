"""Secrets at rest: AES-256-GCM under a data key of the keyring, bound to what the secret is (AAD).

    root key-encryption key (file | environment | PKCS#11 token, `kbs._kek_sources`)
      └─ wraps the data keys (table kbs_data_key: one active, previous ones while a rotation runs, retired ones gone)
           └─ seal resources, their versions, token signing keys (every value names its key)

A sealed value is `0x01 || len(kid) || kid || nonce(12) || ciphertext || tag`: the key id travels with the value, so
values sealed under an old and a new key coexist while `kbs kek rotate` re-seals them (`kbs.kek`). The id "root"
names a value sealed by the root key itself (what the broker stored before the keyring existed).

Replicas learn of a new key without restart: `open` of a value under a key id this process has not loaded reads
the keyring again (once, on that miss); `seal` re-reads which key is active when its view is over a second old.
A value under a retired key (gone) or an unknown one raises `KeyUnavailableError`, which names the key. A process
forgets a retired key at its next read of the keyring (the first value re-sealed away from it is such a read).

    sealer = sealer_for(settings.storage, store)
    sealer.ensure()                       # the first data key, if the database has none
    blob = sealer.seal(b"secret", "resource:default/key/1")
    sealer.open(blob, "resource:default/key/1")
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ._kek_sources import (
    KEK_SIZE,
    NONCE_SIZE,
    KeySource,
    KeySourceError,
    KeyUnavailableError,
    SealError,
    SourceDecryptError,
    key_source,
)
from .settings import StorageSettings
from .storage import Store
from .tables import DataKey

__all__ = ["ROOT_KID", "KeyUnavailableError", "SealError", "Sealer", "kid_of", "sealer_for"]

ROOT_KID = "root"
_FORMAT = 1
# How long `seal` trusts its view of the active key: a rotation waits longer than this before re-sealing
# (`kbs.kek.DEFAULT_GRACE_SECONDS`), so no replica seals under the old key after the rotation started re-sealing.
ACTIVE_TTL_SECONDS = 1.0


def _header(kid: str) -> bytes:
    raw = kid.encode()
    return bytes([_FORMAT, len(raw)]) + raw


def kid_of(sealed: bytes) -> str:
    """The id of the key that sealed `sealed`; SealError when it is not a sealed value of this format."""
    if len(sealed) < 2 or sealed[0] != _FORMAT or len(sealed) < 2 + sealed[1] + NONCE_SIZE:
        raise SealError("stored value is not in the sealed format (format byte, key id, nonce, ciphertext)")
    try:
        return sealed[2 : 2 + sealed[1]].decode("ascii")
    except UnicodeDecodeError as exc:
        raise SealError("stored value names a key id that is not ASCII") from exc


@dataclass(frozen=True)
class _View:
    active: str
    keys: dict[str, AESGCM]
    retired: dict[str, float]  # kid -> retired at
    loaded_at: float  # monotonic


class Sealer:
    """The keyring of one process: data keys unwrapped once each, the active one sealing."""

    def __init__(
        self, source: KeySource, store: Store, *, previous: KeySource | None = None, keep_retired: bool = False
    ) -> None:
        self.source = source
        # The root key before a change of root key: it unwraps only what it wrapped; new keys are the new root's.
        self.previous = previous
        self._store = store
        self._wrapped_by: dict[str, str] = {}
        # A rotation keeps the keys it retires, to re-seal a value a replica wrote under one of them at the last
        # moment; a broker forgets a retired key at its next read of the keyring.
        self._keep_retired = keep_retired
        self._lock = threading.Lock()
        self._view = _View(active="", keys={}, retired={}, loaded_at=-1e18)

    # -- the keyring ---------------------------------------------------------------------------------------------
    def ensure(self) -> None:
        """Make the first data key if the database has none active (another replica may win: then use theirs)."""
        if not any(row.state == "active" for row in self._store.data_keys()):
            self._store.add_first_data_key(self.new_key(time.time()))
        self.reload()

    def new_key(self, now: float) -> DataKey:
        """A new active data key, wrapped by the root key (not stored)."""
        kid = f"dk-{secrets.token_hex(6)}"
        wrapped = self.source.encrypt(os.urandom(KEK_SIZE), f"data-key:{kid}".encode())
        return DataKey(kid=kid, state="active", wrapped=wrapped, created_at=now)

    def reload(self) -> None:
        """Read the keyring again; unwrap the keys this process has not loaded, forget those retired."""
        with self._lock:  # one reload at a time, so a slower one never replaces a newer view with an older one
            rows = self._store.data_keys()
            keys = dict(self._view.keys)
            if not self._keep_retired:
                for row in rows:
                    if row.state == "retired":
                        keys.pop(row.kid, None)
            for row in rows:
                if row.wrapped is not None and row.kid not in keys:
                    keys[row.kid] = AESGCM(self._unwrap(row))
            active = next((r.kid for r in rows if r.state == "active"), "")
            retired = {r.kid: r.retired_at or 0.0 for r in rows if r.state == "retired"}
            self._view = _View(active, keys, retired, time.monotonic())

    def _root_decrypt(self, sealed: bytes, aad: bytes) -> tuple[bytes, str]:
        """Open with the root key, or the previous one; the plaintext and which root opened it."""
        try:
            return self.source.decrypt(sealed, aad), "root"
        except SourceDecryptError:
            if self.previous is None:
                raise
        return self.previous.decrypt(sealed, aad), "previous root"

    def _unwrap(self, row: DataKey) -> bytes:
        assert row.wrapped is not None
        try:
            key, self._wrapped_by[row.kid] = self._root_decrypt(row.wrapped, f"data-key:{row.kid}".encode())
        except KeySourceError as exc:
            raise KeyUnavailableError(f"data key {row.kid} cannot be unwrapped: {exc}") from exc
        except SourceDecryptError as exc:
            raise KeyUnavailableError(
                f"data key {row.kid} {exc}: the database belongs to another root key-encryption key "
                "(changing it: configure the old one as [storage.previous] and run kbs kek rotate)"
            ) from exc
        if len(key) != KEK_SIZE:
            raise KeyUnavailableError(f"data key {row.kid} unwraps to {len(key)} bytes, expected {KEK_SIZE}")
        return key

    @property
    def active_kid(self) -> str:
        return self._view.active

    def loaded(self, kid: str) -> bool:
        return kid == ROOT_KID or kid in self._view.keys

    def wrapped_by(self, kid: str) -> str | None:
        """ "root" or "previous root": which root key unwrapped a loaded data key."""
        return self._wrapped_by.get(kid)

    # -- values --------------------------------------------------------------------------------------------------
    def seal(self, plaintext: bytes, aad: str) -> bytes:
        view = self._view
        if time.monotonic() - view.loaded_at > ACTIVE_TTL_SECONDS:
            self.reload()
            view = self._view
        if not view.active:
            raise KeyUnavailableError("the keyring has no active data key (start the broker once to create it)")
        nonce = os.urandom(NONCE_SIZE)
        return _header(view.active) + nonce + view.keys[view.active].encrypt(nonce, plaintext, aad.encode())

    def open(self, sealed: bytes, aad: str) -> bytes:
        kid = kid_of(sealed)
        body = sealed[2 + len(kid) :]
        if kid == ROOT_KID:
            try:
                return self._root_decrypt(body, aad.encode())[0]
            except KeySourceError as exc:
                raise KeyUnavailableError(f"stored secret {aad!r} is sealed by the root key: {exc}") from exc
            except SourceDecryptError as exc:
                raise SealError(f"stored secret {aad!r} {exc}") from exc
        aead = self._key(kid, aad)
        try:
            return aead.decrypt(body[:NONCE_SIZE], body[NONCE_SIZE:], aad.encode())
        except (InvalidTag, ValueError) as exc:
            raise SealError(f"stored secret {aad!r} does not open under data key {kid} (tampered?)") from exc

    def _key(self, kid: str, aad: str) -> AESGCM:
        view = self._view
        if kid not in view.keys and kid not in view.retired:
            self.reload()  # sealed under a key made since this process last looked (a rotation elsewhere)
            view = self._view
        if kid in view.keys:
            return view.keys[kid]
        if kid in view.retired:
            at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(view.retired[kid]))
            raise KeyUnavailableError(
                f"stored secret {aad!r} is sealed under data key {kid}, retired at {at} and gone: "
                "restore the key from a backup of the database or put the secret again"
            )
        raise KeyUnavailableError(f"stored secret {aad!r} is sealed under data key {kid}, which the keyring lacks")

    def check(self) -> None:
        """The root key (and the previous one, while configured) is there now (readiness); KeySourceError when not."""
        self.source.check()
        if self.previous is not None:
            self.previous.check()


def sealer_for(storage: StorageSettings, store: Store, *, create: bool = False, keep_retired: bool = False) -> Sealer:
    """The sealer of the configured root key (and previous root key); `create` makes a missing key file."""
    previous = key_source(storage.previous) if storage.previous is not None else None
    return Sealer(key_source(storage, create=create), store, previous=previous, keep_retired=keep_retired)
