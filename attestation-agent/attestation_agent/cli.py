"""`attestation-agent` console script: detect the TEE, print evidence, fetch a resource from a KBS, enrol a TPM AK,
serve guest-components' REST API.

Exit codes: 0 success, 1 attestation/operational failure, 2 usage error. JSON on stdout, messages on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import attesters
from ._errors import KbsClientError
from .attesters import Attester, AttesterError

__all__ = ["main", "pick_attester"]

# Commands that talk to the broker take several replicas' URLs and fail over between them.
KBS_HELP = "broker URL, e.g. http://127.0.0.1:8080; several, comma-separated, are replicas to fail over between"


def pick_attester(tee: str | None) -> Attester:
    """The named TEE, or the detected one; the sample fallback warns on stderr."""
    if tee:
        return attesters.get(tee)
    found = attesters.detect()
    if found.tee == "sample":
        print(
            "attestation-agent: warning: no TEE found (TDX, SNP, TPM); using the sample TEE, which no production "
            "broker accepts",
            file=sys.stderr,
        )
    return found


def _cmd_tee(args: argparse.Namespace) -> int:
    attester = pick_attester(None)
    print(json.dumps({"tee": attester.tee}) if args.json else attester.tee)
    return 0


def _cmd_evidence(args: argparse.Namespace) -> int:
    try:
        report_data = bytes.fromhex(args.report_data)
    except ValueError:
        print("attestation-agent: --report-data is not hex", file=sys.stderr)
        return 2
    if len(report_data) > 64:
        print(f"attestation-agent: --report-data is {len(report_data)} bytes, at most 64", file=sys.stderr)
        return 2
    attester = pick_attester(args.tee)
    print(json.dumps(attester.evidence(report_data)))
    return 0


def _cmd_get_resource(args: argparse.Namespace) -> int:
    from kbs_protocol import parse_resource_uri  # noqa: PLC0415

    from .kbs_client import KbsClient  # noqa: PLC0415

    try:
        parse_resource_uri(args.resource)
    except ValueError as exc:
        print(f"attestation-agent: {exc}", file=sys.stderr)
        return 2
    init_data = _read_init_data(args)
    attester = pick_attester(args.tee)
    with KbsClient(args.kbs, attester, init_data=init_data, verify=args.cacert or True) as client:
        data = client.get_resource(args.resource)
    if args.out:
        Path(args.out).write_bytes(data)
        print(f"wrote {len(data)} bytes to {args.out}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return 0


def _cmd_tpm_enroll(args: argparse.Namespace) -> int:
    from .kbs_client import KbsClient  # noqa: PLC0415
    from .tpm_enroll import enroll  # noqa: PLC0415

    with KbsClient(args.kbs, pick_attester("tpm"), verify=args.cacert or True) as client:
        ak_sha256 = enroll(client)
    print(json.dumps({"ak_sha256": ak_sha256}) if args.json else ak_sha256)
    print(f"attestation-agent: AK {ak_sha256} enrolled by credential activation", file=sys.stderr)
    return 0


def _cmd_keyprovider(args: argparse.Namespace) -> int:
    """ocicrypt key-provider command protocol on stdin/stdout: keyunwrap after attesting to the KBS."""
    from .kbs_client import KbsClient  # noqa: PLC0415
    from .keyprovider import KeyProviderError, handle_request  # noqa: PLC0415

    url = args.kbs or os.environ.get("VERITEE_KBS_URL")
    if not url:
        print("attestation-agent keyprovider: give --kbs URL (or set VERITEE_KBS_URL)", file=sys.stderr)
        return 2
    clients: list[KbsClient] = []
    init_data = _read_init_data(args)

    def client() -> KbsClient:
        clients.append(KbsClient(url, pick_attester(args.tee), init_data=init_data, verify=args.cacert or True))
        return clients[-1]

    try:
        response = handle_request(sys.stdin.buffer.read(), client, encoding=args.byte_encoding)
    except KeyProviderError as exc:
        print(f"attestation-agent keyprovider: {exc}", file=sys.stderr)
        return 1
    finally:
        for c in clients:
            c.close()
    sys.stdout.buffer.write(response)
    sys.stdout.buffer.flush()
    return 0


def _cmd_unseal(args: argparse.Namespace) -> int:
    """A CoCo sealed secret to its plaintext: the signature is checked before what it names is fetched."""
    from .kbs_client import KbsClient  # noqa: PLC0415
    from .sealed import MAX_SEALED_SECRET, SealedSecretError, unseal  # noqa: PLC0415

    source = sys.stdin.buffer if args.file == "-" else Path(args.file).open("rb")  # noqa: SIM115
    with source:
        raw = source.read(MAX_SEALED_SECRET + 1)
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        print("attestation-agent unseal: the sealed secret is not ASCII text", file=sys.stderr)
        return 1
    init_data = _read_init_data(args)
    with KbsClient(args.kbs, pick_attester(args.tee), init_data=init_data, verify=args.cacert or True) as client:
        try:
            plaintext = unseal(text, client.get_resource)
        except SealedSecretError as exc:
            print(f"attestation-agent unseal: {exc}", file=sys.stderr)
            return 1
    sys.stdout.buffer.write(plaintext)
    sys.stdout.buffer.flush()
    return 0


def _cmd_extend(args: argparse.Namespace) -> int:
    """One runtime measurement: extend the TEE's runtime register and append the AAEL record."""
    log = attesters.runtime_log(pick_attester(args.tee))
    try:
        log.measure(args.domain, args.operation, args.content)
    except ValueError as exc:
        print(f"attestation-agent extend: {exc}", file=sys.stderr)
        return 2
    print(f"attestation-agent: measured into register {log.register}, logged in {log.path}", file=sys.stderr)
    return 0


def _read_init_data(args: argparse.Namespace) -> str | None:
    return Path(args.init_data).read_text() if getattr(args, "init_data", None) else None


def _cmd_serve(args: argparse.Namespace) -> int:
    """api-server-rest's API on loopback or a unix socket, backed by one reused KBS session."""
    from .service import ServiceConfig, parse_listen, run  # noqa: PLC0415

    try:
        listen = parse_listen(args.listen)
    except ValueError as exc:
        print(f"attestation-agent serve: {exc}", file=sys.stderr)
        return 2
    if not listen.loopback and not args.insecure_allow_remote:
        print(
            f"attestation-agent serve: --listen {args.listen} is not a loopback address; the API hands out secrets "
            "and tokens, so it serves only loopback or a unix socket unless --insecure-allow-remote is given",
            file=sys.stderr,
        )
        return 2
    if args.refresh_margin < 0:
        print("attestation-agent serve: --refresh-margin must not be negative", file=sys.stderr)
        return 2
    attester = pick_attester(args.tee)
    init_data = _read_init_data(args)
    if init_data is not None:
        from .initdata import InitDataError, bind, parse  # noqa: PLC0415

        try:
            bind(attester, parse(init_data))
        except InitDataError as exc:
            print(f"attestation-agent serve: refusing to start: {exc}", file=sys.stderr)
            return 1
    config = ServiceConfig(
        kbs_url=args.kbs,
        attester=attester,
        init_data=init_data,
        listen=listen,
        verify=args.cacert or True,
        allow_remote=args.insecure_allow_remote,
        refresh_margin=args.refresh_margin,
    )
    try:
        run(config)
    except OSError as exc:
        print(f"attestation-agent serve: cannot listen on {listen.describe()}: {exc}", file=sys.stderr)
        return 1
    return 0


def _init_data_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--initdata",
        "--init-data",
        dest="init_data",
        metavar="FILE",
        help="CoCo init-data TOML: checked against the TEE's binding, then sent with every attestation",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attestation-agent", description="Veritee in-guest attestation agent.")
    sub = parser.add_subparsers(dest="command", required=True)
    tee = sub.add_parser("tee", help="print the detected TEE")
    tee.add_argument("--json", action="store_true")
    tee.set_defaults(func=_cmd_tee)
    ev = sub.add_parser("evidence", help="print evidence JSON bound to REPORT_DATA")
    ev.add_argument("--report-data", required=True, help="hex, at most 64 bytes")
    ev.add_argument("--tee", choices=[*attesters.DETECTION_ORDER, "sample"])
    ev.set_defaults(func=_cmd_evidence)
    gr = sub.add_parser("get-resource", help="attest to a KBS and fetch a resource")
    gr.add_argument("--kbs", required=True, help=KBS_HELP)
    gr.add_argument("resource", help="kbs:///REPO/TYPE/TAG")
    gr.add_argument("--out", help="write the resource here instead of stdout")
    gr.add_argument("--tee", choices=[*attesters.DETECTION_ORDER, "sample"])
    _init_data_option(gr)
    gr.add_argument("--cacert", help="CA certificate for the broker's TLS")
    gr.set_defaults(func=_cmd_get_resource)
    te = sub.add_parser("tpm-enroll", help="enrol this TPM's AK with a KBS by EK credential activation")
    te.add_argument("--kbs", required=True, help=KBS_HELP)
    te.add_argument("--cacert", help="CA certificate for the broker's TLS")
    te.add_argument("--json", action="store_true")
    te.set_defaults(func=_cmd_tpm_enroll)
    kp = sub.add_parser("keyprovider", help="ocicrypt key-provider command (keyunwrap) on stdin/stdout")
    kp.add_argument("--kbs", help=KBS_HELP + " (default: $VERITEE_KBS_URL)")
    kp.add_argument("--tee", choices=[*attesters.DETECTION_ORDER, "sample"])
    kp.add_argument("--cacert", help="CA certificate for the broker's TLS")
    _init_data_option(kp)
    kp.add_argument(
        "--byte-encoding",
        choices=("base64", "array"),
        default="base64",
        help="how the unwrapped options are written: base64 (Go ocicrypt, skopeo) or an integer array (Rust "
        "ocicrypt, as image-rs runs a cmd key provider; Go ocicrypt reads it too)",
    )
    kp.set_defaults(func=_cmd_keyprovider)
    us = sub.add_parser("unseal", help="a CoCo sealed secret (sealed.<JWS>) to its plaintext on stdout")
    us.add_argument("--kbs", required=True, help=KBS_HELP)
    us.add_argument("file", metavar="FILE", help="the sealed secret, or - for stdin")
    us.add_argument("--tee", choices=[*attesters.DETECTION_ORDER, "sample"])
    us.add_argument("--cacert", help="CA certificate for the broker's TLS")
    _init_data_option(us)
    us.set_defaults(func=_cmd_unseal)
    ex = sub.add_parser("extend", help="a runtime measurement (CoCo AAEL event) into the TEE's runtime register")
    ex.add_argument("--domain", required=True, help="e.g. github.com/confidential-containers")
    ex.add_argument("--operation", required=True, help="e.g. pull-image")
    ex.add_argument("--content", required=True, help="one line, e.g. an image digest")
    ex.add_argument("--tee", choices=[*attesters.DETECTION_ORDER, "sample"])
    ex.set_defaults(func=_cmd_extend)
    sv = sub.add_parser("serve", help="serve guest-components' api-server-rest API (token, evidence, resources)")
    sv.add_argument("--kbs", required=True, help=KBS_HELP)
    sv.add_argument("--listen", default="127.0.0.1:8006", help="HOST:PORT or unix:PATH (default 127.0.0.1:8006)")
    sv.add_argument("--tee", choices=[*attesters.DETECTION_ORDER, "sample"])
    sv.add_argument("--cacert", help="CA certificate for the broker's TLS")
    sv.add_argument(
        "--refresh-margin",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="re-attest when the token expires within this many seconds (default 10)",
    )
    sv.add_argument(
        "--insecure-allow-remote",
        action="store_true",
        help="listen on and answer non-loopback addresses (the API releases secrets to whoever can reach it)",
    )
    _init_data_option(sv)
    sv.set_defaults(func=_cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (AttesterError, KbsClientError, OSError) as exc:
        print(f"attestation-agent: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
