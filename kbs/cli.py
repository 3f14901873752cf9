"""`kbs` console script: init a configuration, serve the broker, administer it.

Exit codes: 0 success, 1 operational failure, 2 usage error.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import stat
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from . import _admin_cli, _decisions_cli, _kek_cli, _keyprovider_cli  # noqa: F401 (register their commands)
from ._kek_sources import KeySourceError, SealError
from .admin_auth import ROLES, mint_token
from .admin_client import AdminClient, AdminError
from .settings import Settings, load

__all__ = ["main"]

ADMIN_TOKEN_DAYS = 30

CONFIG_TEMPLATE = """\
# Veritee KBS configuration (written by `kbs init`). Relative paths are relative to this file.
[server]
host = "127.0.0.1"
port = 8080
max_body_bytes = 2097152
# tls_cert = "cert.pem"
# tls_key = "key.pem"

[database]
url = "sqlite:///kbs.sqlite"

[storage]
kek_file = "kek.bin"

[tokens]
issuer = "veritee-kbs"
ttl_seconds = 300

[sessions]
ttl_seconds = 300

[admin]
public_keys = ["admin.pub.pem"]

[verifier]
allow_sample = {allow_sample}
offline = true
"""


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _cmd_init(args: argparse.Namespace) -> int:
    from .sealing import sealer_for  # noqa: PLC0415
    from .signing import KeyRing  # noqa: PLC0415
    from .storage import Store  # noqa: PLC0415

    folder = Path(args.dir)
    config = folder / "kbs.toml"
    if config.exists() and not args.force:
        print(f"kbs init: {config} exists (use --force to overwrite)", file=sys.stderr)
        return 1
    folder.mkdir(parents=True, exist_ok=True)
    config.write_text(CONFIG_TEMPLATE.format(allow_sample="true" if args.allow_sample else "false"))
    admin_key = ed25519.Ed25519PrivateKey.generate()
    _write_private(
        folder / "admin.key",
        admin_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    (folder / "admin.pub.pem").write_bytes(
        admin_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    _write_private(
        folder / "admin.token",
        mint_token(admin_key, role="admin", ttl_seconds=ADMIN_TOKEN_DAYS * 86400).encode() + b"\n",
    )
    settings = load(config)
    previous = os.umask(0o077)  # SQLite creates the database (and its -wal, -shm) 0600
    try:
        store = Store(settings.database.url)
        store.migrate()
        sealer = sealer_for(settings.storage, store, create=True)
        sealer.ensure()
        KeyRing(store, sealer, settings.tokens.rotation_overlap_seconds).ensure()
        store.engine.dispose()
    finally:
        os.umask(previous)
    for path in _sqlite_files(settings):
        if path.exists():
            path.chmod(0o600)  # an existing database (init --force) is made private too
    print(f"wrote {config}, {folder / 'admin.token'} (admin bearer token, {ADMIN_TOKEN_DAYS} days)", file=sys.stderr)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415
    from fastapi import FastAPI  # noqa: PLC0415

    from .app import SETTINGS_ENV, create_app  # noqa: PLC0415

    settings = load(Path(args.config) if args.config else None)
    if args.host:
        settings.server.host = args.host
    if args.port:
        settings.server.port = args.port
    if args.database_url:
        settings.database.url = args.database_url
    if args.insecure_http:
        settings.server.insecure_http = True
    tls = settings.server.tls_cert is not None and settings.server.tls_key is not None
    if not tls and not settings.server.insecure_http and not _is_loopback(settings.server.host):
        print(
            f"kbs serve: refusing plain HTTP on {settings.server.host}: configure server.tls_cert/tls_key "
            "(or server.insecure_http = true behind a TLS-terminating proxy)",
            file=sys.stderr,
        )
        return 2
    exposed = _exposed_files(settings, Path(args.config).resolve().parent if args.config else None)
    if exposed:
        for path, mode in exposed:
            print(f"kbs serve: {path} is readable by group or others (mode {mode:o}): chmod 600 it", file=sys.stderr)
        return 1
    os.umask(0o077)  # whatever the broker creates (the SQLite database, its -wal and -shm) is private
    _configure_logging(args.log_level)
    if args.workers is not None:
        settings.server.workers = args.workers
    app: FastAPI | str
    if settings.server.workers > 1:
        # N processes accept on the one socket uvicorn binds; each builds its own app (pool, threads, caches)
        # from the settings resolved here, and they share nothing but the database.
        os.environ[SETTINGS_ENV] = settings.model_dump_json()
        app = "kbs.app:create_app_from_environment"
    else:
        app = create_app(settings)
    uvicorn.run(
        app,
        factory=isinstance(app, str),
        workers=settings.server.workers,
        host=settings.server.host,
        port=settings.server.port,
        ssl_certfile=str(settings.server.tls_cert) if tls else None,
        ssl_keyfile=str(settings.server.tls_key) if tls else None,
        log_level="warning",
        access_log=False,
        # The client address behind a proxy is decided by server.trusted_proxies, not by uvicorn's own rule.
        proxy_headers=False,
    )
    return 0


def _positive(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 64:
        raise argparse.ArgumentTypeError(f"{value} is not between 1 and 64")
    return number


def _sqlite_files(settings: Settings) -> list[Path]:
    prefix = "sqlite:///"
    url = settings.database.url
    if not url.startswith(prefix) or ":memory:" in url:
        return []
    database = Path(url.removeprefix(prefix).split("?", 1)[0])
    return [database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")]


def _exposed_files(settings: Settings, config_dir: Path | None) -> list[tuple[Path, int]]:
    """The broker's secret files (KEK, SQLite database, the admin key and token `kbs init` wrote beside the
    configuration) that exist with any permission for group or others."""
    candidates = _sqlite_files(settings)
    for root in (settings.storage, settings.storage.previous):
        if root is not None and root.kek_source == "file":
            candidates.append(root.kek_file)
        if root is not None and root.pkcs11 is not None and root.pkcs11.pin_file is not None:
            candidates.append(root.pkcs11.pin_file)
    if config_dir is not None:
        candidates += [config_dir / "admin.key", config_dir / "admin.token"]
    exposed = []
    for path in candidates:
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            continue
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            exposed.append((path, stat.S_IMODE(mode)))
    return exposed


# Libraries whose DEBUG output would carry request bodies, SQL parameters (sealed values, tokens) or headers: they
# stay at WARNING whatever --log-level asks for, so no secret reaches the logs at any level.
_QUIET_LOGGERS = ("sqlalchemy", "alembic", "httpx", "httpcore", "hpack", "multipart", "python_multipart", "redis")


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _cmd_token(args: argparse.Namespace) -> int:
    key = serialization.load_pem_private_key(Path(args.key).read_bytes(), password=None)
    print(mint_token(key, role=args.role, subject=args.subject, ttl_seconds=args.days * 86400))
    return 0


def _cmd_admin(args: argparse.Namespace) -> int:
    local = getattr(args, "local", None)
    # A command with both (reference-value derive) runs locally unless asked to use the broker (--put).
    if local is not None and not getattr(args, "use_broker", False):
        code: int = local(args)
        return code
    if not args.url:
        print("kbs admin: --url is required for this command", file=sys.stderr)
        return 2
    token_file = Path(args.token) if args.token else None
    token = os.environ.get("VERITEE_ADMIN_TOKEN", "")
    if token_file is not None:
        token = token_file.read_text().strip()
    with AdminClient(args.url, token, verify=args.cacert or True) as client:
        return int(args.handler(args, client))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kbs", description="Veritee key broker (KBS protocol 0.4.0).")
    sub = parser.add_subparsers(dest="command", required=True)

    init = sub.add_parser("init", help="write a working configuration into DIR")
    init.add_argument("dir")
    init.add_argument("--allow-sample", action="store_true", help="accept the sample TEE (development only)")
    init.add_argument("--force", action="store_true", help="overwrite an existing kbs.toml")
    init.set_defaults(func=_cmd_init)

    serve = sub.add_parser("serve", help="run the broker")
    serve.add_argument("--config")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--database-url")
    serve.add_argument(
        "--workers",
        type=_positive,
        help="worker processes on the one port, sharing only the database (default: server.workers, 1)",
    )
    serve.add_argument(
        "--insecure-http",
        action="store_true",
        help="allow plain HTTP on a non-loopback address (behind a TLS-terminating load balancer only)",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(func=_cmd_serve)

    token = sub.add_parser("token", help="mint an admin bearer token from an admin private key")
    token.add_argument("--key", required=True, help="admin private key PEM (admin.key from kbs init)")
    token.add_argument("--role", default="admin", choices=sorted(ROLES))
    token.add_argument("--subject", default="admin")
    token.add_argument("--days", type=int, default=ADMIN_TOKEN_DAYS)
    token.set_defaults(func=_cmd_token)

    admin = sub.add_parser("admin", help="administer a running broker")
    admin.add_argument("--url", help="broker base URL, e.g. http://127.0.0.1:8080")
    admin.add_argument("--token", help="file holding the admin bearer token (else $VERITEE_ADMIN_TOKEN)")
    admin.add_argument("--cacert", help="CA certificate to verify the broker's TLS certificate")
    admin_sub = admin.add_subparsers(dest="group", required=True)
    for add in _admin_cli.ADMIN_COMMANDS:
        add(admin_sub)
    admin.set_defaults(func=_cmd_admin)
    _kek_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except AdminError as exc:
        print(f"kbs: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError, TypeError, KeySourceError, SealError) as exc:
        print(f"kbs: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
