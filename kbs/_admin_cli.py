"""`kbs admin ...` sub-commands. Each group registers itself in ADMIN_COMMANDS; `kbs.cli` builds the parser.

Every handler takes (args, client) and returns an exit code; JSON goes to stdout, messages to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from verifier.rego import Policy, PolicyError, run_rego_tests

from ._derive_cli import add_derive_parser
from .admin_client import AdminClient

__all__ = ["ADMIN_COMMANDS", "register"]

Handler = Callable[[argparse.Namespace, AdminClient], int]
# Functions that add sub-commands to the `kbs admin` parser.
ADMIN_COMMANDS: list[Callable[[Any], None]] = []


def register(fn: Callable[[Any], None]) -> Callable[[Any], None]:
    ADMIN_COMMANDS.append(fn)
    return fn


def _out(value: object) -> int:
    print(json.dumps(value, indent=2, sort_keys=True))
    return 0


def _read_text(path: str) -> str:
    return Path(path).read_text()


@register
def _resource(sub: Any) -> None:
    p = sub.add_parser("resource", help="manage secrets")
    rs = p.add_subparsers(dest="action", required=True)
    put = rs.add_parser("put", help="store FILE's bytes as REPO/TYPE/TAG")
    put.add_argument("path")
    put.add_argument("file")
    put.set_defaults(handler=lambda a, c: c.put_resource(a.path, Path(a.file).read_bytes()) or _ok(f"stored {a.path}"))
    get = rs.add_parser("get", help="write a secret's bytes to stdout (audited)")
    get.add_argument("path")
    get.set_defaults(handler=lambda a, c: _raw(c.get_resource(a.path)))
    delete = rs.add_parser("delete")
    delete.add_argument("path")
    delete.set_defaults(handler=lambda a, c: c.delete_resource(a.path) or _ok(f"deleted {a.path}"))
    lst = rs.add_parser("list")
    lst.set_defaults(handler=lambda _a, c: _out(c.list_resources()))


def _ok(message: str) -> int:
    print(message, file=sys.stderr)
    return 0


def _raw(data: bytes) -> int:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return 0


def _policy_set(args: argparse.Namespace, client: AdminClient) -> int:
    """`set resource FILE.rego [--scope P]` or `set attestation ID FILE.rego`."""
    match args.kind, args.id_or_file:
        case "resource", [file]:
            policy_id = client.set_resource_policy(_read_text(file), args.scope)
        case "attestation", [tee_or_id, file]:
            policy_id = client.set_attestation_policy(tee_or_id, _read_text(file))
        case _:
            print("usage: kbs admin policy set resource FILE.rego | set attestation ID FILE.rego", file=sys.stderr)
            return 2
    return _ok(f"policy {policy_id} set")


def _policy_lint(args: argparse.Namespace) -> int:
    try:
        Policy.compile(_read_text(args.file), Path(args.file).name)
    except PolicyError as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 1
    return _ok(f"{args.file}: ok")


def _policy_test(args: argparse.Namespace) -> int:
    results = run_rego_tests(_read_text(args.file), _read_text(args.tests))
    failed = [name for name, passed in results.items() if not passed]
    for name, passed in results.items():
        print(f"{'PASS' if passed else 'FAIL'} {name}", file=sys.stderr)
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed", file=sys.stderr)
    return 1 if failed or not results else 0


def _policy_dry_run(args: argparse.Namespace) -> int:
    """Evaluate a policy on a given input; for a resource policy, list the `reasons` when it denies."""
    source = _read_text(args.file)
    document = json.loads(_read_text(args.input))
    data: dict[str, Any] = {}
    if args.data:
        data = json.loads(_read_text(args.data))
    if args.resource:
        data = {**data, "plugin": "resource", "resource-path": args.resource.split("/"), "query": {}}
    try:
        references = data.get("reference")
        values = Policy.compile(source).evaluate(
            "data.policy", document, data, references if isinstance(references, dict) else None
        )
    except PolicyError as exc:
        print(f"policy failed: {exc}", file=sys.stderr)
        return 1
    _out(values)
    if "allow" in values or args.resource:
        if values.get("allow") is True:
            return _ok("allowed")
        reasons = values.get("reasons") or ["allow is not true (the policy gives no reasons rule)"]
        for reason in reasons:
            print(f"denied: {reason}", file=sys.stderr)
        return 1
    return 0


@register
def _policy(sub: Any) -> None:
    p = sub.add_parser("policy", help="manage, lint, test and dry-run policies")
    ps = p.add_subparsers(dest="action", required=True)
    s = ps.add_parser("set", help="set resource FILE.rego [--scope P] | set attestation ID FILE.rego")
    s.add_argument("kind", choices=["resource", "attestation"])
    s.add_argument("id_or_file", nargs="+")
    s.add_argument("--scope", help="resource path prefix the policy applies to (repo[/type[/tag]])")
    s.set_defaults(handler=_policy_set)
    g = ps.add_parser("get", help="print a stored policy (ids: resource, resource:<scope>, attestation:<id>)")
    g.add_argument("id", nargs="?", default="resource")
    g.set_defaults(handler=lambda a, c: _raw(c.get_policy(a.id).encode()))
    ls = ps.add_parser("list")
    ls.set_defaults(handler=lambda _a, c: _out(c.list_policies()))
    d = ps.add_parser("delete")
    d.add_argument("id")
    d.set_defaults(handler=lambda a, c: c.delete_policy(a.id) or _ok(f"deleted {a.id}"))
    lint = ps.add_parser("lint", help="compile a policy locally")
    lint.add_argument("file")
    lint.set_defaults(local=_policy_lint)
    test = ps.add_parser("test", help="run a policy's Rego unit tests (test_* rules) locally")
    test.add_argument("file")
    test.add_argument("tests")
    test.set_defaults(local=_policy_test)
    dry = ps.add_parser("dry-run", help="evaluate a policy on an input JSON and explain a denial")
    dry.add_argument("file")
    dry.add_argument("--input", required=True, help="input JSON (EAR claims or annotated evidence)")
    dry.add_argument("--data", help='data JSON (e.g. {"reference": {...}})')
    dry.add_argument("--resource", help="REPO/TYPE/TAG: evaluate as the resource policy for this path")
    dry.set_defaults(local=_policy_dry_run)


@register
def _reference_values(sub: Any) -> None:
    p = sub.add_parser("reference-value", help="manage reference values")
    rs = p.add_subparsers(dest="action", required=True)
    put = rs.add_parser("put", help="NAME VALUE... [--expires ISO8601]: replace NAME's accepted values")
    put.add_argument("name")
    put.add_argument("values", nargs="+")
    put.add_argument("--expires", type=datetime.fromisoformat)
    put.set_defaults(handler=lambda a, c: c.put_reference_value(a.name, a.values, a.expires) or _ok(f"stored {a.name}"))
    lst = rs.add_parser("list")
    lst.set_defaults(handler=lambda _a, c: _out(c.list_reference_values()))
    delete = rs.add_parser("delete")
    delete.add_argument("name")
    delete.set_defaults(handler=lambda a, c: c.delete_reference_value(a.name) or _ok(f"deleted {a.name}"))
    add_derive_parser(rs)


@register
def _operations(sub: Any) -> None:
    audit = sub.add_parser("audit", help="print the newest audit records")
    audit.add_argument("--limit", type=int, default=100)
    audit.set_defaults(handler=lambda a, c: _out(c.audit(a.limit)))
    rotate = sub.add_parser("rotate-signing-key", help="make a new token signing key (the old one overlaps)")
    rotate.set_defaults(handler=lambda _a, c: _out({"kid": c.rotate_signing_key()}))
