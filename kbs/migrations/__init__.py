"""Alembic schema migrations of the broker's database (run by `kbs serve` at start, under a lock)."""
