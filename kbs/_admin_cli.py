"""`kbs admin ...` sub-commands. Each group registers itself in ADMIN_COMMANDS; `kbs.cli` builds the parser.

Every handler takes (args, client) and returns an exit code; JSON goes to stdout, messages to stderr.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from verifier.rego import Policy, PolicyError, run_rego_tests

from ._derive_cli import add_derive_parser
from .admin_client import AUDIT_PAGE, AdminClient

__all__ = ["ADMIN_COMMANDS", "POLICY_COMMANDS", "register"]

Handler = Callable[[argparse.Namespace, AdminClient], int]
# Functions that add sub-commands to the `kbs admin` parser, and to its `policy` group.
ADMIN_COMMANDS: list[Callable[[Any], None]] = []
POLICY_COMMANDS: list[Callable[[Any], None]] = []


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
    get = rs.add_parser("get", help="write a secret's bytes to stdout (audited); --version N: a kept version")
    get.add_argument("path")
    get.add_argument("--version", type=_version, help="a version from `resource versions` (default: the current)")
    get.set_defaults(handler=lambda a, c: _raw(c.get_resource(a.path, a.version)))
    delete = rs.add_parser("delete", help="delete a secret (restorable within the broker's history retention)")
    delete.add_argument("path")
    delete.set_defaults(handler=lambda a, c: c.delete_resource(a.path) or _ok(f"deleted {a.path}"))
    lst = rs.add_parser("list")
    lst.set_defaults(handler=lambda _a, c: _out(c.list_resources()))
    versions = rs.add_parser("versions", help="a secret's kept versions: who, when, size (JSON, never the value)")
    versions.add_argument("path")
    versions.set_defaults(handler=lambda a, c: _out(c.resource_versions(a.path)))
    restore = rs.add_parser("restore", help="make a kept version current again (default: undo the delete)")
    restore.add_argument("path")
    restore.add_argument("--version", type=_version, help="the version to restore (default: the deleted one)")
    restore.set_defaults(handler=lambda a, c: _restored(a.path, c.restore_resource(a.path, a.version)))


def _version(text: str) -> int:
    """A version number for argparse (a usage error, exit 2, when it is not a positive integer)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"version {text!r} is not a positive integer (versions start at 1)")
    return int(text)


def _restored(key: str, made: dict[str, Any]) -> int:
    _out(made)
    return _ok(f"{key}: version {made['restored_from']} restored as version {made['version']}")


def _ok(message: str) -> int:
    print(message, file=sys.stderr)
    return 0


def _raw(data: bytes) -> int:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return 0


def _policy_set(args: argparse.Namespace, client: AdminClient) -> int:
    """`set resource FILE.rego [--scope P]` or `set attestation ID FILE.rego`, `[--tests DIR]`: the unit tests run
    here first (a failure stores nothing), then again in the broker, which refuses a policy that fails them."""
    match args.kind, args.id_or_file:
        case "resource", [file]:
            ident, source = None, _read_text(file)
        case "attestation", [tee_or_id, file]:
            ident, source = tee_or_id, _read_text(file)
        case _:
            print("usage: kbs admin policy set resource FILE.rego | set attestation ID FILE.rego", file=sys.stderr)
            return 2
    tests = None
    if args.tests is not None:
        tests = _test_modules(Path(args.tests))
        if tests is None:
            return 2
        if not _run_tests(source, tests):
            print("policy not stored: its unit tests fail", file=sys.stderr)
            return 1
    if ident is None:
        stored = client.set_resource_policy(source, args.scope, tests)
    else:
        stored = client.set_attestation_policy(ident, source, tests)
    return _ok(f"policy {stored['policy_id']} set (version {stored.get('version')})")


def _test_modules(folder: Path) -> dict[str, str] | None:
    """The `*_test.rego` files of a folder, name -> source; None (after saying why) when there are none."""
    files = sorted(folder.glob("*_test.rego")) if folder.is_dir() else []
    if not files:
        print(f"kbs admin policy set: --tests {folder}: no *_test.rego files in that directory", file=sys.stderr)
        return None
    return {f.name: f.read_text() for f in files}


def _run_tests(source: str, tests: dict[str, str]) -> bool:
    """Run each module's `test_*` rules against the policy (the runner of `policies/*_test.rego`), PASS/FAIL per
    rule and a count on stderr; True when every module compiles, has tests, and they all pass."""
    passed = failed = 0
    for name, module in tests.items():
        try:
            results = run_rego_tests(source, module)
        except PolicyError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            return False
        if not results:
            print(f"{name}: no test_* rules", file=sys.stderr)
            failed += 1
        for rule, ok in results.items():
            print(f"{'PASS' if ok else 'FAIL'} {name}: {rule}", file=sys.stderr)
            passed, failed = passed + ok, failed + (not ok)
    print(f"{passed} passed, {failed} failed", file=sys.stderr)
    return failed == 0 and passed > 0


def _policy_key(kind: str, ident: str | None) -> str:
    """The stored id of `KIND [ID]`: `resource [SCOPE]` or `attestation ID` (ID: a TEE name or `default`)."""
    if kind == "resource":
        return "resource" if not ident else f"resource:{ident.strip('/')}"
    if not ident:
        raise _UsageError("an attestation policy needs its ID (a TEE name or default)")
    return f"attestation:{ident}"


class _UsageError(Exception):
    """A command line whose positional arguments do not fit (exit 2)."""


def _split_versioned(kind: str, rest: list[str], count: int) -> tuple[str, list[int]]:
    """`KIND [ID] V...`: the policy id and the `count` version numbers at the end of `rest`."""
    if len(rest) not in (count, count + 1):
        raise _UsageError(f"expected {'[ID] ' if kind == 'resource' else 'ID '}and {count} version number(s)")
    ident = rest[0] if len(rest) == count + 1 else None
    try:
        numbers = [_version(v) for v in rest[len(rest) - count :]]
    except argparse.ArgumentTypeError as exc:
        raise _UsageError(str(exc)) from None
    return _policy_key(kind, ident), numbers


def _usage_errors(handler: Handler) -> Handler:
    def run(args: argparse.Namespace, client: AdminClient) -> int:
        try:
            return handler(args, client)
        except _UsageError as exc:
            print(f"kbs admin policy {args.action}: {exc}", file=sys.stderr)
            return 2

    return run


@_usage_errors
def _policy_history(args: argparse.Namespace, client: AdminClient) -> int:
    if len(args.rest) > 1:
        raise _UsageError("expected KIND [ID]")
    return _out(client.policy_versions(_policy_key(args.kind, next(iter(args.rest), None))))


@_usage_errors
def _policy_rollback(args: argparse.Namespace, client: AdminClient) -> int:
    policy_id, [version] = _split_versioned(args.kind, args.rest, 1)
    return _restored(policy_id, client.rollback_policy(policy_id, version))


@_usage_errors
def _policy_diff(args: argparse.Namespace, client: AdminClient) -> int:
    """A unified diff of two kept versions of a policy, A to B, on stdout."""
    policy_id, [a, b] = _split_versioned(args.kind, args.rest, 2)
    old, new = client.get_policy(policy_id, a), client.get_policy(policy_id, b)
    diff = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), f"{policy_id}@{a}", f"{policy_id}@{b}"
    )
    sys.stdout.writelines(diff)
    return 0


def _policy_lint(args: argparse.Namespace) -> int:
    try:
        Policy.compile(_read_text(args.file), Path(args.file).name)
    except PolicyError as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 1
    return _ok(f"{args.file}: ok")


def _policy_test(args: argparse.Namespace) -> int:
    return 0 if _run_tests(_read_text(args.file), {Path(args.tests).name: _read_text(args.tests)}) else 1


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
    s.add_argument("--tests", metavar="DIR", help="run DIR's *_test.rego against the policy first; refuse on failure")
    s.set_defaults(handler=_policy_set)
    g = ps.add_parser("get", help="print a stored policy (ids: resource, resource:<scope>, attestation:<id>)")
    g.add_argument("id", nargs="?", default="resource")
    g.add_argument("--version", type=_version, help="a kept version from `policy history` (default: in force)")
    g.set_defaults(handler=lambda a, c: _raw(c.get_policy(a.id, a.version).encode()))
    kinds = ["resource", "attestation"]
    h = ps.add_parser("history", help="KIND [ID]: a policy's versions, numbered from 1 in order of set (JSON)")
    h.add_argument("kind", choices=kinds)
    h.add_argument("rest", nargs="*", metavar="ID", help="resource: a scope (default: every path); attestation: ID")
    h.set_defaults(handler=_policy_history)
    rb = ps.add_parser("rollback", help="KIND [ID] N: put version N back in force (as a new version)")
    rb.add_argument("kind", choices=kinds)
    rb.add_argument("rest", nargs="+", metavar="[ID] N")
    rb.set_defaults(handler=_policy_rollback)
    df = ps.add_parser("diff", help="KIND [ID] A B: unified diff of versions A and B")
    df.add_argument("kind", choices=kinds)
    df.add_argument("rest", nargs="+", metavar="[ID] A B")
    df.set_defaults(handler=_policy_diff)
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
    for add in POLICY_COMMANDS:
        add(ps)


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
    delete = rs.add_parser("delete", help="delete NAME's values (restorable within the broker's history retention)")
    delete.add_argument("name")
    delete.set_defaults(handler=lambda a, c: c.delete_reference_value(a.name) or _ok(f"deleted {a.name}"))
    history = rs.add_parser("history", help="NAME's versions: the accepted values, who put them and when (JSON)")
    history.add_argument("name")
    history.set_defaults(handler=lambda a, c: _out(c.reference_value_versions(a.name)))
    restore = rs.add_parser("restore", help="make a kept version of NAME current again (default: undo the delete)")
    restore.add_argument("name")
    restore.add_argument("--version", type=_version, help="the version to restore (default: the deleted one)")
    restore.set_defaults(handler=lambda a, c: _restored(a.name, c.restore_reference_value(a.name, a.version)))
    add_derive_parser(rs)


def _audit_verify(args: argparse.Namespace, client: AdminClient) -> int:
    """Exit 0 when the chain is intact, 1 naming the first broken or missing entry, or the entries left unchained
    past the grace."""
    result = client.audit_verify(args.anchor)
    _out(result)
    if result["intact"]:
        return _ok(f"audit log intact: {result['entries']} entries, head {result['head_digest']}")
    if result["broken_at"] is None:
        print(f"audit log not verified: {result['problem']}", file=sys.stderr)
    else:
        print(f"audit log broken at entry {result['broken_at']}: {result['problem']}", file=sys.stderr)
    return 1


def _audit_export(args: argparse.Namespace, client: AdminClient) -> int:
    """Every entry after --after-id (and since --since) as JSON lines on stdout, oldest first, page by page."""
    after = args.after_id
    while True:
        lines = client.audit_export(after, args.since)
        for line in lines:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()
        if len(lines) < AUDIT_PAGE:
            return 0
        after = int(json.loads(lines[-1])["id"])


def _anchor(text: str) -> tuple[int, str]:
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise argparse.ArgumentTypeError(f"{text!r} is not ID:DIGEST (an entry id and its 64-hex digest)")
    return int(seq), digest


def _since(text: str) -> float:
    """UNIX seconds or an ISO 8601 time (with its offset; UTC when it has none)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is neither UNIX seconds nor an ISO 8601 time") from exc
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@register
def _operations(sub: Any) -> None:
    audit = sub.add_parser("audit", help="print the newest audit entries; verify the chain; export it")
    audit.add_argument("--limit", type=int, default=100)
    audit.set_defaults(handler=lambda a, c: _out(c.audit(a.limit)))
    actions = audit.add_subparsers(dest="audit_action")
    verify = actions.add_parser("verify", help="check the hash chain: exit 1 naming the first broken entry")
    verify.add_argument(
        "--anchor", type=_anchor, metavar="ID:DIGEST", help="an entry id and digest an earlier export recorded"
    )
    verify.set_defaults(handler=_audit_verify)
    export = actions.add_parser("export", help="entries as JSON lines (oldest first) for a log pipeline")
    export.add_argument("--after-id", type=int, default=0, help="only entries after this id (incremental export)")
    export.add_argument("--since", type=_since, help="only entries at or after this time (UNIX seconds or ISO 8601)")
    export.set_defaults(handler=_audit_export)
    rotate = sub.add_parser("rotate-signing-key", help="make a new token signing key (the old one overlaps)")
    rotate.set_defaults(handler=lambda _a, c: _out({"kid": c.rotate_signing_key()}))
