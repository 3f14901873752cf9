"""Registry credentials (a containers auth.json) and the distribution API's token authentication.

auth.json (containers-auth.json(5)): `{"auths": {"<host>[/<namespace>...]": {"auth": base64("user:password")}}}`;
the most specific key that is a prefix of `host/repository` at a `/` boundary wins, and Docker's legacy key
`https://index.docker.io/v1/` stands for `docker.io`. Identity tokens (OAuth2 refresh tokens) are refused: this
guest speaks only the password grant of the token protocol.

Authentication (distribution's spec/auth/token.md): a request answered 401 carries a `WWW-Authenticate`
challenge. `Basic` is answered with the credentials; `Bearer realm=...,service=...,scope=...` by fetching a token
from the realm (GET with `service` and `scope`, the credentials as Basic auth if there are any: anonymous pulls get
anonymous tokens) and retrying with `Authorization: Bearer <token>`. The token is reused for later requests.
Credentials go only to the registry and to the realm it names, and to a realm only over HTTPS unless the realm's
host:port was named by --insecure-registry.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

from guest._errors import RegistryError
from guest._http import Url

__all__ = ["Credentials", "RegistryAuth", "credentials_for"]

LEGACY_DOCKER_KEYS = ("https://index.docker.io/v1/", "index.docker.io")
MAX_TOKEN_BYTES = 64 * 1024
_PARAM_RE = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, repr=False)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<redacted>)"

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def _key(raw: str) -> str:
    if raw in LEGACY_DOCKER_KEYS:
        return "docker.io"
    return raw.removeprefix("https://").removeprefix("http://").rstrip("/")


def credentials_for(auth_json: bytes, name: str, what: str) -> Credentials | None:
    """The credentials auth.json holds for repository `name` (`host/repository`), or None."""
    try:
        doc = json.loads(auth_json)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # RecursionError: too deeply nested
        raise RegistryError(f"{what}: not valid JSON ({exc})") from None
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        raise RegistryError(f'{what}: expected {{"auths": {{"<registry>": {{"auth": ...}}}}}}')
    best: tuple[int, str, object] | None = None
    for raw, entry in auths.items():
        key = _key(raw)
        if (name == key or name.startswith(key + "/")) and (best is None or len(key) > best[0]):
            best = (len(key), raw, entry)
    if best is None:
        return None
    _, raw, entry = best
    if not isinstance(entry, dict):
        raise RegistryError(f"{what}: auths[{raw!r}] is not an object")
    if entry.get("identitytoken"):
        raise RegistryError(f"{what}: auths[{raw!r}] holds an identitytoken, which this guest does not support")
    encoded = entry.get("auth")
    if not isinstance(encoded, str):
        raise RegistryError(f"{what}: auths[{raw!r}].auth is missing, expected base64 of user:password")
    try:
        user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, ValueError):
        raise RegistryError(f"{what}: auths[{raw!r}].auth is not base64 of user:password") from None
    if not sep or not user:
        raise RegistryError(f"{what}: auths[{raw!r}].auth is not base64 of user:password")
    return Credentials(user, password)


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), {k.lower(): v.replace('\\"', '"') for k, v in _PARAM_RE.findall(rest)}


# GET (url, headers) -> (status, body of at most MAX_TOKEN_BYTES + 1 bytes)
TokenGet = Callable[[Url, dict[str, str]], tuple[int, bytes]]


@dataclass
class RegistryAuth:
    """Answers a registry's 401 challenges for pulls from `repository`; `authorization` is the header it earned
    (sent on every later request to the registry)."""

    repository: str
    credentials: Credentials | None = None
    insecure_hosts: frozenset[str] = frozenset()
    authorization: str | None = field(default=None, repr=False)

    def answer(self, challenge: str, origin: Url, get: TokenGet) -> bool:
        """Earn a new Authorization for the challenge `WWW-Authenticate: challenge`; False when there is nothing
        (more) to try, so that the 401 stands."""
        scheme, params = _challenge(challenge)
        if scheme == "basic":
            if self.credentials is None:
                return False
            authorization = self.credentials.basic()
        elif scheme == "bearer":
            url, headers = self._token_request(params, origin)
            authorization = "Bearer " + self._token(*get(url, headers), url)
        else:
            return False
        if authorization == self.authorization:
            return False  # the same answer was already refused
        self.authorization = authorization
        return True

    def _token_request(self, params: Mapping[str, str], origin: Url) -> tuple[Url, dict[str, str]]:
        realm = params.get("realm")
        if not realm:
            raise RegistryError(f"{origin.host_port}: Bearer challenge without a realm")
        try:
            url = Url.parse(realm)
        except ValueError:
            raise RegistryError(f"{origin.host_port}: Bearer realm {realm!r} is not an http(s) URL") from None
        if url.scheme != "https" and url.host_port not in self.insecure_hosts:
            raise RegistryError(
                f"{origin.host_port}: token realm {realm} is not HTTPS (name its host:port with --insecure-registry "
                "to allow plain HTTP)"
            )
        query = {"scope": params.get("scope") or f"repository:{self.repository}:pull"}
        if "service" in params:
            query["service"] = params["service"]
        headers = {"Authorization": self.credentials.basic()} if self.credentials is not None else {}
        return url.with_query(query), headers

    @staticmethod
    def _token(status: int, body: bytes, url: Url) -> str:
        what = f"token service {url.scheme}://{url.host_port}{url.target.partition('?')[0]}"
        if status != HTTPStatus.OK:
            raise RegistryError(f"{what}: HTTP {status} (are the credentials right?)")
        if len(body) > MAX_TOKEN_BYTES:
            raise RegistryError(f"{what}: answer larger than {MAX_TOKEN_BYTES} bytes")
        try:
            doc = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # RecursionError: too deeply nested
            raise RegistryError(f"{what}: answer is not JSON") from None
        token = (doc.get("token") or doc.get("access_token")) if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token or not token.isprintable():
            raise RegistryError(f"{what}: answer holds no token")
        return token
