"""What history costs an admin write, and that the protocol's read does not change: a resource put with its version
appended (and the history swept and trimmed, in one transaction) against the bare upsert of the current row that a
put was before history, on the same database in the same run; then the resource step's read of the current value,
with a history of `max_versions` versions behind it and without. SQLite file by default, or `--database-url`.

    python bench/kbs_history.py [--database-url postgresql://postgres@127.0.0.1:5432/test] [--json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]  # bench._timing, and this checkout's kbs

from sqlalchemy import delete, insert  # noqa: E402

from bench._timing import call_times, percentile, print_figures  # noqa: E402
from kbs._audit_chain import AuditRecord  # noqa: E402
from kbs.storage import Retention, Store  # noqa: E402
from kbs.tables import Resource  # noqa: E402

SEALED = os.urandom(92)  # a 64-byte secret once sealed (nonce, key id and tag around it)
ACTOR = "bench (admin)"


def per_call_ms(fn: Callable[[int], object], calls: int) -> tuple[float, float]:
    """(median, p99) milliseconds of `calls` calls of fn(i)."""
    times = call_times(fn, calls=calls)
    return statistics.median(times) * 1e3, percentile(times, 0.99) * 1e3


def audit(path: str, now: float) -> AuditRecord:
    return AuditRecord(ACTOR, "resource.put", path, "ok", now)


def bare_put(store: Store, path: str, now: float) -> None:
    """A put as it was before history: the current row replaced, with its audit entry (as every put has), in one
    write transaction; so the ratio is history's cost alone."""
    with store.write() as writes:
        writes.connection.execute(delete(Resource).where(Resource.path == path))  # type: ignore[arg-type]
        row = {"path": path, "sealed": SEALED, "size": 64, "updated_at": now}
        writes.connection.execute(insert(Resource), row)
        writes.add_audit(audit(path, now))


def measure(url: str, calls: int) -> dict[str, float]:
    store = Store(url, threads=1, retention=Retention(seconds=3600, max_versions=50))
    store.migrate()
    try:
        bare, bare_p99 = per_call_ms(lambda i: bare_put(store, "bench/bare/key", float(i)), calls)
        versioned, versioned_p99 = per_call_ms(
            lambda i: store.put_resource(
                Resource(path="bench/versioned/key", sealed=SEALED, size=64, updated_at=float(i)),
                ACTOR,
                audit("bench/versioned/key", float(i)),
            ),
            calls,
        )
        with store.read() as reads:
            read_bare = per_call_ms(lambda _i: reads.resource("bench/bare/key"), calls * 10)[0]
            read_versioned = per_call_ms(lambda _i: reads.resource("bench/versioned/key"), calls * 10)[0]
        return {
            "put_bare_ms": bare,
            "put_bare_p99_ms": bare_p99,
            "put_versioned_ms": versioned,
            "put_versioned_p99_ms": versioned_p99,
            "put_ratio": versioned / bare,
            "read_no_history_ms": read_bare,
            "read_with_50_versions_ms": read_versioned,
            "read_ratio": read_versioned / read_bare,
        }
    finally:
        store.engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'bench.sqlite'}"
        result = measure(url, args.calls)
    print_figures(result, as_json=args.json, digits=3)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
