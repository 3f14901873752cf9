"""`guest`: decrypt or unpack an (encrypted) OCI image in the confidential guest (docs/cli.md, docs/images.md).

    guest decrypt-image [--kbs URL] [--key REF]... [PULL OPTIONS] [--json] SRC oci:DST[:TAG]
    guest unpack        [--kbs URL] [--key REF]... [PULL OPTIONS] [--json] SRC ROOTFS

SRC is `oci:DIR[:TAG]` or `docker://HOST[:PORT]/REPO[:TAG|@sha256:DIGEST]`. PULL OPTIONS: --policy FILE|kbs:///R/T/T
(containers-policy.json; required for docker:// sources), --auth FILE|kbs:///R/T/T (containers auth.json),
--insecure-registry HOST:PORT (plain HTTP to that host), --platform OS/ARCH[/VARIANT] (default linux/<this arch>).

Exit status: 0 success, 1 verification/decryption/operational failure, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from attestation_agent.attesters import AttesterError

from guest._errors import GuestError, ImageRefError
from guest._image import decrypt_image, unpack_image
from guest._keys import Keyring
from guest._layout import ImageRef
from guest._pull import PullOptions, Resources, open_source
from guest._reference import Platform

if TYPE_CHECKING:
    from attestation_agent.kbs_client import KbsClient

EXIT_FAILURE = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="guest", description="Decrypt and unpack ocicrypt-encrypted OCI images.")
    commands = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--kbs", metavar="URL", help="key broker: key-provider KEKs and kbs:/// private keys")
    common.add_argument(
        "--key",
        metavar="REF",
        action="append",
        default=[],
        help="private key for ocicrypt JWE recipients: kbs:///REPO/TYPE/TAG (fetched after attesting) or file:PATH",
    )
    common.add_argument(
        "--initdata",
        "--init-data",
        dest="init_data",
        metavar="FILE",
        help="CoCo init-data TOML sent with the attestation (checked against the TEE's binding first)",
    )
    common.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    common.add_argument(
        "--policy",
        metavar="FILE|kbs:///R/T/T",
        help="containers-policy.json the image must satisfy (required for docker:// sources)",
    )
    common.add_argument("--auth", metavar="FILE|kbs:///R/T/T", help="registry credentials: a containers auth.json")
    common.add_argument(
        "--insecure-registry",
        metavar="HOST:PORT",
        action="append",
        default=[],
        help="allow plain HTTP to this registry (repeatable)",
    )
    common.add_argument("--platform", metavar="OS/ARCH[/VARIANT]", help="platform to pick from an image index")
    decrypt = commands.add_parser(
        "decrypt-image",
        parents=[common],
        help="write a decrypted copy of an image layout",
        description=__doc__,
    )
    decrypt.add_argument("source", metavar="SRC", help="oci:DIR[:TAG] or docker://HOST[:PORT]/REPO[:TAG|@DIGEST]")
    decrypt.add_argument("destination", metavar="DST", help="oci:DIR[:TAG] (DIR new or empty)")
    unpack = commands.add_parser(
        "unpack", parents=[common], help="unpack an image layout into a root filesystem", description=__doc__
    )
    unpack.add_argument("source", metavar="SRC", help="oci:DIR[:TAG] or docker://HOST[:PORT]/REPO[:TAG|@DIGEST]")
    unpack.add_argument("rootfs", metavar="ROOTFS", help="directory to create (new or empty)")
    return parser


class _LazyKbs:
    """Attests (through the agent's KbsClient) only when a key is first needed, then caches what it fetched."""

    def __init__(self, url: str, init_data: str | None = None) -> None:
        self.url = url
        self.init_data = init_data
        self._client: KbsClient | None = None
        self._cache: dict[str, bytes] = {}

    def get_resource(self, uri: str) -> bytes:
        if uri not in self._cache:
            if self._client is None:
                # Imported here: httpx and pydantic cost ~80 ms of start-up that only KBS users should pay.
                from attestation_agent.kbs_client import KbsClient  # noqa: PLC0415

                self._client = KbsClient(self.url, init_data=self.init_data)
            self._cache[uri] = self._client.get_resource(uri)
        return self._cache[uri]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _is_kbs_error(exc: Exception) -> bool:
    client = sys.modules.get("attestation_agent.kbs_client")  # not imported: no KbsClientError can exist
    return client is not None and isinstance(exc, client.KbsClientError)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        init_data = Path(args.init_data).read_text() if args.init_data else None
    except OSError as exc:
        print(f"guest: --initdata: {exc.strerror or exc}: {args.init_data}", file=sys.stderr)
        return EXIT_USAGE
    kbs = _LazyKbs(args.kbs, init_data) if args.kbs else None
    try:
        options = PullOptions(
            policy=args.policy,
            auth=args.auth,
            insecure_registries=tuple(args.insecure_registry),
            platform=Platform.parse(args.platform) if args.platform else None,
        )
        keyring = Keyring(fetcher=kbs, key_refs=tuple(args.key))
        destination = ImageRef.parse(args.destination) if args.command == "decrypt-image" else None
        summary: dict[str, object]
        with open_source(args.source, options, Resources(kbs)) as source:
            if destination is not None:
                result = decrypt_image(source, destination, keyring)
                summary = {
                    "image": args.destination,
                    "manifest": result.manifest.digest,
                    "layers": [d.digest for d in result.layers],
                    "decrypted_layers": result.decrypted,
                }
                message = f"decrypted {result.decrypted} of {len(result.layers)} layers into {args.destination}"
            else:
                count = unpack_image(source, Path(args.rootfs), keyring)
                summary = {"rootfs": args.rootfs, "layers": count}
                message = f"unpacked {count} layers into {args.rootfs}"
        if options.verdicts:
            summary["policy"] = options.verdicts
    except ImageRefError as exc:
        print(f"guest: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (GuestError, AttesterError) as exc:
        print(f"guest: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:
        print(f"guest: {exc.strerror or exc}: {exc.filename or ''}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as exc:  # the CLI edge: a KbsClientError, whose module is imported only once a KBS is used
        if not _is_kbs_error(exc):
            raise
        print(f"guest: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        if kbs is not None:
            kbs.close()
    if args.json:
        print(json.dumps(summary))
    print(f"guest: {message}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
