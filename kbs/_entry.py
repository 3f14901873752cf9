"""The `kbs` console script's entry point: in a bare `pip install veritee` (the guest's and the verifier's install)
the broker's dependencies are absent, and `kbs` says how to get them instead of failing with a traceback."""

from __future__ import annotations

import importlib.util
import sys

__all__ = ["BROKER_MODULES", "main"]

# Import names of the `kbs` extra's distributions (pyproject.toml [project.optional-dependencies] kbs).
BROKER_MODULES = (
    "fastapi",
    "uvicorn",
    "pydantic",
    "pydantic_settings",
    "sqlmodel",
    "alembic",
    "psycopg",
    "regorus",
    "httpx",
)


def main() -> int:
    missing = [name for name in BROKER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        print(
            f"kbs: the key broker's dependencies are not installed ({', '.join(missing)} missing); "
            "install them with: pip install 'veritee[kbs]'",
            file=sys.stderr,
        )
        return 1
    from kbs.cli import main as cli_main  # noqa: PLC0415 (only once its dependencies are known to be there)

    return cli_main()
