"""`kbs kek ...`: the key-encryption keys, run on a host that has the broker's configuration (database and root key),
beside running replicas.

    kbs kek init --config FILE      make the root key where it is missing (key file, or the key on the token)
    kbs kek rotate --config FILE    new data key, every secret re-sealed in batches, old keys retired
    kbs kek status --config FILE    keys, what each seals, and every secret whose key is gone

Exit codes: 0 done, 1 failure or a secret that cannot be opened (listed), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._kek_sources import EnvKey, KeySourceError, Pkcs11Key, SealError, key_source
from .settings import Settings, load

if TYPE_CHECKING:
    from .sealing import Sealer
    from .storage import Store

__all__ = ["add_parser"]


def _grace(value: str) -> float:
    from .sealing import ACTIVE_TTL_SECONDS  # noqa: PLC0415

    seconds = float(value)
    if seconds <= ACTIVE_TTL_SECONDS:
        raise argparse.ArgumentTypeError(f"must exceed {ACTIVE_TTL_SECONDS}s, how long a replica trusts its view")
    return seconds


def _batch(value: str) -> int:
    size = int(value)
    if not 1 <= size <= 10_000:
        raise argparse.ArgumentTypeError(f"{value} is not between 1 and 10000")
    return size


def add_parser(sub: Any) -> None:
    kek = sub.add_parser("kek", help="key-encryption keys: init, rotate, status")
    actions = kek.add_subparsers(dest="action", required=True)
    init = actions.add_parser("init", help="make the root key where it is missing (file, or on the PKCS#11 token)")
    init.add_argument("--config", required=True)
    init.set_defaults(func=_cmd_init)
    rotate = actions.add_parser("rotate", help="new data key, every secret re-sealed while replicas serve")
    rotate.add_argument("--config", required=True)
    rotate.add_argument("--batch-size", type=_batch, default=None, help="values per transaction (default 100)")
    rotate.add_argument("--grace-seconds", type=_grace, default=None, help="wait for replicas (default 3)")
    rotate.add_argument("--json", action="store_true", help="the report as JSON on stdout")
    rotate.set_defaults(func=_cmd_rotate)
    status = actions.add_parser("status", help="keys, sealed values per key, values whose key is gone")
    status.add_argument("--config", required=True)
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_cmd_status)


def _settings(args: argparse.Namespace) -> Settings:
    return load(Path(args.config))


def _cmd_init(args: argparse.Namespace) -> int:
    storage = _settings(args).storage
    if storage.kek_source == "pkcs11":
        if storage.pkcs11 is None:
            raise KeySourceError('storage.kek_source = "pkcs11" needs a [storage.pkcs11] section')
        source = Pkcs11Key(storage.pkcs11, open_now=False)
        made = source.generate()
        print(f"{source.description}: {'generated' if made else 'already there'}", file=sys.stderr)
    elif storage.kek_source == "env":
        print(f"{EnvKey(storage.kek_env).description}: set", file=sys.stderr)
    else:
        existed = storage.kek_file.exists()
        key_source(storage, create=True)
        print(f"{storage.kek_file}: {'already there' if existed else 'written (0600)'}", file=sys.stderr)
    return 0


def _open(args: argparse.Namespace, *, rotating: bool = False) -> tuple[Store, Sealer]:
    from .sealing import sealer_for  # noqa: PLC0415 (storage and SQLAlchemy only for the commands that need them)
    from .storage import Store  # noqa: PLC0415

    settings = _settings(args)
    os.umask(0o077)
    store = Store(settings.database.url, threads=1)
    store.migrate()
    return store, sealer_for(settings.storage, store, keep_retired=rotating)


def _print_unreadable(unreadable: list[dict[str, str]]) -> None:
    for u in unreadable:
        print(f"kbs kek: {u['table']} {u['key']}: cannot be opened: {u['reason']}", file=sys.stderr)


def _cmd_rotate(args: argparse.Namespace) -> int:
    from .kek import DEFAULT_BATCH_SIZE, DEFAULT_GRACE_SECONDS, rotate  # noqa: PLC0415
    from .storage import ConflictError  # noqa: PLC0415

    store, sealer = _open(args, rotating=True)
    try:
        report = rotate(
            store,
            sealer,
            batch_size=args.batch_size or DEFAULT_BATCH_SIZE,
            grace_seconds=args.grace_seconds or DEFAULT_GRACE_SECONDS,
            progress=lambda line: print(f"kbs kek rotate: {line}", file=sys.stderr, flush=True),
        )
        # Its audit entries chained now, when no broker runs (a running broker's chainer would chain them too).
        store.chain_audit()
    except (SealError, ConflictError) as exc:
        print(f"kbs kek rotate: {exc}", file=sys.stderr)
        return 1
    finally:
        store.engine.dispose()
    document = report.as_json()
    if args.json:
        print(json.dumps(document, indent=2, sort_keys=True))
    total = sum(report.resealed.values())
    print(
        f"kbs kek rotate: {total} values re-sealed under {report.active}; retired {', '.join(report.retired) or '-'}",
        file=sys.stderr,
    )
    _print_unreadable(document["unreadable"])
    return 1 if report.unreadable else 0


def _cmd_status(args: argparse.Namespace) -> int:
    from .kek import status  # noqa: PLC0415

    store, sealer = _open(args)
    try:
        document = status(store, sealer).as_json()
    except SealError as exc:
        print(f"kbs kek status: {exc}", file=sys.stderr)
        return 1
    finally:
        store.engine.dispose()
    if args.json:
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        for key in document["keys"]:
            counts = document["sealed"].get(key["kid"], {})
            wrapped = f"wrapped by the {key['wrapped_by']}" if key["wrapped_by"] else "gone"
            print(f"{key['kid']}  {key['state']:<8}  {sum(counts.values())} sealed values  {wrapped}")
        if "root" in document["sealed"]:
            print(f"root  (root key itself)  {sum(document['sealed']['root'].values())} sealed values")
    _print_unreadable(document["unreadable"])
    return 1 if document["unreadable"] else 0
