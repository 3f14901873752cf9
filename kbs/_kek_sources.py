"""Where the broker's root key-encryption key comes from: a file, an environment variable, or a PKCS#11 token.

The root key only wraps the data keys of the keyring (`kbs.sealing`), which seal the secrets; it is used once per
data key and process (and by `kbs kek rotate`), never per secret. Every source does AES-256-GCM with a random
96-bit nonce, `nonce || ciphertext || tag`:

- `file`: 32 raw bytes in a 0600 file (`storage.kek_file`), read again by every readiness check;
- `env`: 32 bytes, hex (64 digits) or base64, in the variable `storage.kek_env`;
- `pkcs11`: an AES-256 key on a token, generated there non-extractable and sensitive (`kbs kek init`); GCM runs on
  the token (CKM_AES_GCM), so the root key never leaves it.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
import threading
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .settings import Pkcs11Settings, RootKeySettings

if TYPE_CHECKING:
    import pkcs11

__all__ = [
    "KEK_SIZE",
    "KeySource",
    "KeySourceError",
    "KeyUnavailableError",
    "SealError",
    "SourceDecryptError",
    "key_source",
    "load_or_create_kek",
]

KEK_SIZE = 32
NONCE_SIZE = 12
_TAG_BITS = 128


class KeySourceError(Exception):
    """The root key cannot be had: file missing or readable by others, variable unset, token absent or locked."""


class SealError(Exception):
    """A sealed value that does not open (tampered storage, or sealed under another root key)."""


class KeyUnavailableError(SealError):
    """The key that sealed a value is not available: retired (gone), unknown to the keyring, or the root key
    cannot be had."""


class SourceDecryptError(Exception):
    """A value that does not open under the root key (another root key, or tampered storage)."""


class KeySource(Protocol):
    description: str

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes: ...

    def decrypt(self, sealed: bytes, aad: bytes) -> bytes: ...

    def check(self) -> None:
        """Return when the root key is there and usable now; KeySourceError when not."""


def load_or_create_kek(path: Path, *, create: bool) -> bytes:
    if not path.exists():
        if not create:
            raise FileNotFoundError(f"key-encryption key file {path} does not exist")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(KEK_SIZE))
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionError(f"key-encryption key file {path} is readable by others (mode {mode & 0o777:o})")
    kek = path.read_bytes()
    if len(kek) != KEK_SIZE:
        raise ValueError(f"key-encryption key file {path} holds {len(kek)} bytes, expected {KEK_SIZE}")
    return kek


class _SoftwareKey:
    """A root key held in this process (file or environment)."""

    def __init__(self, key: bytes, description: str) -> None:
        self.description = description
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, sealed: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], aad)
        except (InvalidTag, ValueError) as exc:
            raise SourceDecryptError(f"does not open under the {self.description}") from exc


class FileKey(_SoftwareKey):
    def __init__(self, path: Path, *, create: bool) -> None:
        self._path = path
        try:
            key = load_or_create_kek(path, create=create)
        except (OSError, ValueError) as exc:
            raise KeySourceError(str(exc)) from exc
        super().__init__(key, f"key-encryption key file {path}")

    def check(self) -> None:
        # The file is read again: a replica started now needs it, so one that lost it is not ready.
        try:
            load_or_create_kek(self._path, create=False)
        except (OSError, ValueError) as exc:
            raise KeySourceError(str(exc)) from exc


def _decode_env_key(name: str, text: str) -> bytes:
    text = text.strip()
    try:
        key = bytes.fromhex(text) if len(text) == 2 * KEK_SIZE else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise KeySourceError(f"environment variable {name} is neither 64 hex digits nor base64") from exc
    if len(key) != KEK_SIZE:
        raise KeySourceError(f"environment variable {name} holds {len(key)} bytes, expected {KEK_SIZE}")
    return key


class EnvKey(_SoftwareKey):
    def __init__(self, name: str) -> None:
        text = os.environ.get(name)
        if not text:
            raise KeySourceError(f"environment variable {name} (storage.kek_env) is not set")
        super().__init__(_decode_env_key(name, text), f"key-encryption key in ${name}")

    def check(self) -> None:
        """A process's environment does not change under it: the key decoded at start is the key."""


class _TokenKey(Protocol):
    """What python-pkcs11's secret keys with the encrypt and decrypt capabilities offer."""

    def encrypt(self, data: bytes, **kwargs: Any) -> bytes: ...

    def decrypt(self, data: bytes, **kwargs: Any) -> bytes: ...


class Pkcs11Key:
    """An AES-256 key on a PKCS#11 token (python-pkcs11). One session, used under a lock (sessions are not
    thread-safe), reopened when the token went away and came back."""

    def __init__(self, settings: Pkcs11Settings, *, open_now: bool = True) -> None:
        import pkcs11  # noqa: PLC0415 (only brokers configured for a token load the library)

        self.description = f"PKCS#11 key {settings.key_label!r} on token {settings.token_label!r}"
        self._settings = settings
        self._pkcs11 = pkcs11
        self._lock = threading.Lock()
        self._session: pkcs11.Session | None = None
        self._key: _TokenKey | None = None
        try:
            self._lib = pkcs11.lib(str(settings.library))
        except RuntimeError as exc:  # python-pkcs11 raises RuntimeError (or a subclass) for a library it cannot load
            raise KeySourceError(f"PKCS#11 library {settings.library} cannot be loaded: {exc}") from exc
        if open_now:  # a broker fails at start, not at its first secret, when the token or key is not there
            with self._lock:
                self._open()

    def _pin(self) -> str:
        s = self._settings
        if s.pin_env is not None:
            pin = os.environ.get(s.pin_env)
            if not pin:
                raise KeySourceError(f"environment variable {s.pin_env} (storage.pkcs11.pin_env) is not set")
            return pin
        if s.pin_file is None:
            raise KeySourceError("storage.pkcs11 needs pin_file or pin_env")
        try:
            mode = s.pin_file.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise KeySourceError(f"PIN file {s.pin_file} is readable by others (mode {mode & 0o777:o})")
            return s.pin_file.read_text().strip()
        except OSError as exc:
            raise KeySourceError(f"PIN file {s.pin_file}: {exc}") from exc

    def _open(self) -> _TokenKey:
        """The key, opening the session if needed (caller holds the lock)."""
        if self._session is not None and self._key is not None:
            return self._key
        p = self._pkcs11
        try:
            token = self._lib.get_token(token_label=self._settings.token_label)
            session = token.open(user_pin=self._pin(), rw=True)
        except p.PKCS11Error as exc:
            raise KeySourceError(f"{self.description}: token cannot be opened ({type(exc).__name__})") from exc
        try:
            key = session.get_key(object_class=p.ObjectClass.SECRET_KEY, label=self._settings.key_label)
        except p.PKCS11Error as exc:
            session.close()
            raise KeySourceError(f"{self.description}: no such key ({type(exc).__name__}); run `kbs kek init`") from exc
        if not isinstance(key, p.types.EncryptMixin) or not isinstance(key, p.types.DecryptMixin):
            session.close()
            raise KeySourceError(f"{self.description}: the key cannot encrypt and decrypt")
        self._session, self._key = session, cast(_TokenKey, key)
        return self._key

    def _drop(self) -> None:
        session, self._session, self._key = self._session, None, None
        if session is not None:
            with suppress(self._pkcs11.PKCS11Error):  # the token is gone: there is nothing to close
                session.close()

    def _gcm(self, nonce: bytes, aad: bytes) -> dict[str, object]:
        from pkcs11.mechanisms import GCMParams  # noqa: PLC0415

        return {"mechanism": self._pkcs11.Mechanism.AES_GCM, "mechanism_param": GCMParams(nonce, aad, _TAG_BITS)}

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        with self._lock:
            key = self._open()
            try:
                return nonce + bytes(key.encrypt(plaintext, **self._gcm(nonce, aad)))
            except self._pkcs11.PKCS11Error as exc:
                self._drop()
                raise KeySourceError(f"{self.description}: encryption failed ({type(exc).__name__})") from exc

    def decrypt(self, sealed: bytes, aad: bytes) -> bytes:
        p = self._pkcs11
        with self._lock:
            key = self._open()
            try:
                return bytes(key.decrypt(sealed[NONCE_SIZE:], **self._gcm(sealed[:NONCE_SIZE], aad)))
            except (p.exceptions.EncryptedDataInvalid, p.exceptions.EncryptedDataLenRange) as exc:
                raise SourceDecryptError(f"does not open under the {self.description}") from exc
            except p.PKCS11Error as exc:
                # SoftHSM answers CKR_GENERAL_ERROR for a tag mismatch: tell it apart from a lost token by asking.
                self._drop()
                self._open()  # KeySourceError when the token is gone
                raise SourceDecryptError(f"does not open under the {self.description}") from exc

    def check(self) -> None:
        """A round trip on the token: the key is there and works (a removed or logged-out token fails)."""
        aad = b"veritee readiness"
        if self.decrypt(self.encrypt(b"", aad), aad) != b"":
            raise KeySourceError(f"{self.description}: the token answered a wrong round trip")

    def generate(self) -> bool:
        """Make the key on the token (AES-256, non-extractable, sensitive) unless it exists; True when made."""
        p = self._pkcs11
        with self._lock:
            with suppress(KeySourceError):
                self._open()
                return False
            token = self._lib.get_token(token_label=self._settings.token_label)
            with token.open(user_pin=self._pin(), rw=True) as session:
                session.generate_key(
                    p.KeyType.AES,
                    KEK_SIZE * 8,
                    label=self._settings.key_label,
                    store=True,
                    template={p.Attribute.EXTRACTABLE: False, p.Attribute.SENSITIVE: True},
                )
            self._open()
            return True


def key_source(settings: RootKeySettings, *, create: bool = False) -> KeySource:
    """The configured root key; KeySourceError when it cannot be had. `create` makes a missing key file."""
    if settings.kek_source == "env":
        return EnvKey(settings.kek_env)
    if settings.kek_source == "pkcs11":
        if settings.pkcs11 is None:
            raise KeySourceError('storage.kek_source = "pkcs11" needs a [storage.pkcs11] section')
        return Pkcs11Key(settings.pkcs11)
    return FileKey(settings.kek_file, create=create)
