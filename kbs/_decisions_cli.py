"""`kbs admin decisions list|show`: the decisions the broker recorded; `kbs admin policy explain` (a recorded
decision, or a local policy on an input) and `kbs admin policy impact` (recorded decisions replayed under a
candidate policy). docs/cli.md, docs/tokens-and-policies.md."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from verifier.explain import explain, render
from verifier.rego import Policy, PolicyError

from ._admin_cli import POLICY_COMMANDS, register
from .admin_client import AdminClient

__all__ = ["since"]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def since(value: str) -> float:
    """`--since`: an ISO 8601 time (`2026-12-03T17:00:00Z`), or a duration back from now (`90s`, `15m`, `2h`, `7d`)."""
    duration = _DURATION.match(value)
    if duration:
        return time.time() - float(duration.group(1)) * _UNITS[duration.group(2)]
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is neither an ISO 8601 time nor a duration such as 15m, 2h, 7d"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no time zone (add Z or +00:00)")
    return moment.timestamp()


def _when(at: float) -> str:
    return datetime.fromtimestamp(at).astimezone().isoformat(timespec="seconds")


def _list(args: argparse.Namespace, client: AdminClient) -> int:
    rows = client.list_decisions(kind=args.kind, denied=args.denied, since=args.since, path=args.path, limit=args.limit)
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
        return 0
    for row in rows:
        subject = row["path"] or row["tee"] or "-"
        when = _when(row["at"])
        print(f"{row['id']:>8}  {when}  {row['kind']:<11}  {row['outcome']:<15}  {subject}  {row['policy_id']}")
    return 0


def _show(args: argparse.Namespace, client: AdminClient) -> int:
    document: dict[str, Any] = client.get_decision(args.id)
    print(json.dumps(document, indent=2, sort_keys=True))
    return 0


@register
def _decisions(sub: Any) -> None:
    p = sub.add_parser("decisions", help="the attestation and resource decisions the broker recorded")
    ds = p.add_subparsers(dest="action", required=True)
    lst = ds.add_parser("list", help="newest first: id, time, kind, outcome, TEE or path, policy")
    lst.add_argument("--denied", action="store_true", help="only denials (and attestations not affirming)")
    lst.add_argument("--since", type=since, help="ISO 8601 time, or a duration back from now (15m, 2h, 7d)")
    lst.add_argument("--path", help="only decisions on this resource path (repo/type/tag)")
    lst.add_argument("--kind", choices=["attestation", "resource"])
    lst.add_argument("--limit", type=int, default=100, help="at most this many (1..1000)")
    lst.add_argument("--json", action="store_true", help="JSON rows on stdout")
    lst.set_defaults(handler=_list)
    show = ds.add_parser("show", help="one decision as JSON: its input, reference values, trust vector")
    show.add_argument("id", type=int)
    show.set_defaults(handler=_show)


def _json_object(path: str, what: str) -> dict[str, Any] | str:
    """The JSON object in a file, or what is wrong with it."""
    try:
        value = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        return f"{what} {path} is not JSON: {exc}"
    return value if isinstance(value, dict) else f"{what} {path} holds a JSON {type(value).__name__}, not an object"


def _explain_local(args: argparse.Namespace) -> int:
    """`policy explain --input FILE POLICY.rego [--data FILE] [--resource PATH]`, on this machine."""
    document = _json_object(args.input, "--input")
    data = _json_object(args.data, "--data") if args.data else {}
    if isinstance(document, str) or isinstance(data, str):
        print(f"kbs: {document if isinstance(document, str) else data}", file=sys.stderr)
        return 2
    if args.resource:
        data = {**data, "plugin": "resource", "resource-path": args.resource.split("/"), "query": {}}
    references = data.get("reference")
    try:
        policy = Policy.compile(Path(args.target).read_text(), Path(args.target).name)
        explanation = explain(policy, document, data, references if isinstance(references, dict) else None)
    except PolicyError as exc:
        print(f"{args.target}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(explanation.to_json(), indent=2, sort_keys=True) if args.json else render(explanation))
    return 0


def _explain_remote(args: argparse.Namespace, client: AdminClient) -> int:
    if not args.target.isdigit():
        print(f"kbs: decision id {args.target!r} is not a number (a policy file needs --input)", file=sys.stderr)
        return 2
    answer = client.explain_decision(int(args.target))
    print(json.dumps(answer, indent=2, sort_keys=True) if args.json else answer["text"])
    return 0


def _impact(args: argparse.Namespace, client: AdminClient) -> int:
    """`policy impact attestation|resource [ID] NEW.rego [--since T]`."""
    if len(args.id_and_file) > 2:
        print("usage: kbs admin policy impact attestation|resource [ID] NEW.rego [--since T]", file=sys.stderr)
        return 2
    *target, file = args.id_and_file
    report = client.policy_impact(args.kind, Path(file).read_text(), target[0] if target else None, args.since)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        for flip in report["flips"]:
            decision = flip["decision"]
            subject = decision["path"] or decision["tee"] or "-"
            print(
                f"decision {decision['id']} ({decision['kind']} {subject}, {_when(decision['at'])}): "
                f"{flip['before']} -> {flip['after']}"
            )
            print("    " + flip["text"].replace("\n", "\n    "))
    print(
        f"{report['replayed']} decisions replayed, {len(report['flips'])} would flip"
        f" ({report['skipped']} without claims to replay)",
        file=sys.stderr,
    )
    return 0


class _LocalInput(argparse.Action):
    """`--input FILE` makes `policy explain` a local command (kbs.cli runs `local` unless `use_broker`)."""

    def __call__(self, _parser: Any, namespace: argparse.Namespace, values: Any, _option: str | None = None) -> None:
        namespace.input = values
        namespace.use_broker = False


def _policy_commands(ps: Any) -> None:
    ex = ps.add_parser(
        "explain",
        help="ID: why a recorded decision went as it did; --input FILE POLICY.rego: the same for a local policy",
    )
    ex.add_argument("target", help="a decision id, or (with --input) a policy file")
    ex.add_argument(
        "--input",
        action=_LocalInput,
        help="input JSON: EAR claims (resource policy) or annotated evidence (attestation); explains locally",
    )
    ex.add_argument("--data", help='data JSON; its "reference" member answers query_reference_value')
    ex.add_argument("--resource", help="REPO/TYPE/TAG: the path a resource policy is asked about")
    ex.add_argument("--json", action="store_true", help="the explanation as JSON")
    ex.set_defaults(handler=_explain_remote, local=_explain_local, use_broker=True)
    im = ps.add_parser("impact", help="attestation|resource [ID] NEW.rego: recorded decisions NEW would flip")
    im.add_argument("kind", choices=["attestation", "resource"])
    im.add_argument("id_and_file", nargs="+", metavar="[ID] NEW.rego")
    im.add_argument("--since", type=since, help="ISO 8601 time, or a duration back from now (15m, 2h, 7d)")
    im.add_argument("--json", action="store_true", help="the report as JSON")
    im.set_defaults(handler=_impact)


POLICY_COMMANDS.append(_policy_commands)
