"""What sealing costs per root-key source: a secret sealed and opened by a data key in memory (what the broker does
on every release, whatever the source), against AES-256-GCM run by a SoftHSM2 token per value (what sealing each
secret on the token would cost), and the token's unwrap of a data key (paid once per key and process).

    SOFTHSM2_CONF is set up by the script itself, in a temporary folder.
    python bench/kek_sources.py [--json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]  # bench._timing, and this checkout's kbs

from bench._timing import call_times, print_figures  # noqa: E402
from kbs._kek_sources import Pkcs11Key, key_source  # noqa: E402
from kbs.sealing import Sealer  # noqa: E402
from kbs.settings import Pkcs11Settings, StorageSettings  # noqa: E402
from kbs.storage import Store  # noqa: E402

SOFTHSM = Path("/usr/lib/softhsm/libsofthsm2.so")
SECRET = os.urandom(64)


def per_call_us(fn: Callable[[], object], seconds: float = 1.0) -> float:
    """Mean microseconds of a call of fn, over as many calls as `seconds` holds (timed 100 at a time: a call can
    take a few microseconds)."""
    return statistics.mean(call_times(lambda _i: fn(), seconds=seconds, batch=100)) * 1e6


def token(folder: Path) -> Pkcs11Key:
    (folder / "tokens").mkdir()
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    init = ["softhsm2-util", "--init-token", "--free", "--label", "bench", "--pin", "1234", "--so-pin", "12345678"]
    subprocess.run(init, check=True, capture_output=True)
    pin = folder / "pin"
    pin.write_text("1234")
    pin.chmod(0o600)
    key = Pkcs11Key(Pkcs11Settings(library=SOFTHSM, token_label="bench", pin_file=pin), open_now=False)
    key.generate()
    return key


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = Store(f"sqlite:///{folder / 'bench.sqlite'}", threads=1)
        store.migrate()
        sealer = Sealer(key_source(StorageSettings(kek_file=folder / "kek.bin"), create=True), store)
        sealer.ensure()
        sealed = sealer.seal(SECRET, "resource:bench")
        on_token = token(folder)
        wrapped = on_token.encrypt(os.urandom(32), b"data-key:bench")
        figures = {
            "data_key_seal_us": per_call_us(lambda: sealer.seal(SECRET, "resource:bench")),
            "data_key_open_us": per_call_us(lambda: sealer.open(sealed, "resource:bench")),
            "token_gcm_encrypt_us": per_call_us(lambda: on_token.encrypt(SECRET, b"resource:bench")),
            "token_unwrap_data_key_us": per_call_us(lambda: on_token.decrypt(wrapped, b"data-key:bench")),
            "token_readiness_check_us": per_call_us(on_token.check),
        }
        store.engine.dispose()
    print_figures(figures, as_json=args.json, digits=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
