"""Pulling an encrypted, signed image from a loopback registry: `guest unpack` vs `skopeo copy` with decryption.

The image: one layer of N MiB of random file content (64 files), encrypted by skopeo to a JWE EC P-256 recipient
(skopeo gzips the layer before encrypting it) and signed with a sigstore key (skopeo
`--sign-by-sigstore-private-key`, stored as a registry attachment), pushed to Debian's docker-registry on 127.0.0.1.
Each contender runs as its own process under the same signature policy (sigstoreSigned, the signer's public key),
and its peak RSS is that process's ru_maxrss:
- guest:  `guest unpack --policy P --insecure-registry H --key file:KEY docker://H/bench/image:v1 ROOTFS`
          (signature check, every digest, HMAC, AES-CTR, gunzip + diff_id, tar extraction into a root filesystem);
- skopeo: `skopeo copy --policy P --decryption-key KEY docker://H/bench/image:v1 oci:OUT` (signature check, blob
          digest, HMAC, AES-CTR, writes the decrypted layer; no decompression, no extraction);
- and, for the same output as skopeo's, `guest decrypt-image ... docker://H/bench/image:v1 oci:OUT` (as guest
  unpack, but writing the decrypted layer blob instead of extracting it).
Targets: guest >= 1.5x skopeo's MB/s (of the encrypted layer), guest's peak RSS flat in the
image size (measured at --small-mib and --mib).

    python bench/pull_image.py [--mib 256] [--small-mib 64] [--workdir DIR]

The work dir (default: TMPDIR) holds the registry's storage and the outputs. Best of 3 runs each; on a shared
machine, report the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "attestation-agent")]
SKOPEO = ROOT / "scripts" / "skopeo-keyprovider"
TOOLS = ROOT / "scripts" / "trixie-tools"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "attestation-agent")])}
FILES = 64
PASSWORD = "bench-only-passphrase"
REPEAT = 3

WRAPPER = """
import resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True)
elapsed = time.perf_counter() - start
if done.returncode:
    sys.exit(done.stderr.decode())
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(elapsed, usage.ru_maxrss, usage.ru_utime + usage.ru_stime)
"""


def measure(*command: str, cleanup: Path) -> tuple[float, int, float]:
    """Best wall time (s) of REPEAT runs, the peak RSS (KiB) and the least CPU time (user + system, s), each run
    by a fresh wrapper process. On a shared machine CPU time varies less with the load than wall time does."""
    best, peak, cpu = float("inf"), 0, float("inf")
    for _ in range(REPEAT):
        shutil.rmtree(cleanup, ignore_errors=True)
        done = subprocess.run([sys.executable, "-c", WRAPPER, *command], capture_output=True, env=ENV, check=False)
        if done.returncode:
            raise SystemExit(f"{command[:4]} failed: {done.stderr.decode()}")
        elapsed, rss, used = done.stdout.split()
        best, peak, cpu = min(best, float(elapsed)), max(peak, int(rss)), min(cpu, float(used))
    shutil.rmtree(cleanup, ignore_errors=True)
    return best, peak, cpu


def run(*command: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(command, capture_output=True, cwd=cwd, env=env or ENV, check=False)
    if done.returncode:
        raise SystemExit(f"{command[:3]} failed: {done.stderr.decode()}")


def start_registry(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        host = f"127.0.0.1:{s.getsockname()[1]}"
    config = {"version": 0.1, "log": {"level": "error", "accesslog": {"disabled": True}},
              "storage": {"filesystem": {"rootdirectory": str(folder / "data")}}, "http": {"addr": host}}  # fmt: skip
    folder.mkdir()
    (folder / "config.yml").write_text(json.dumps(config))
    registry = subprocess.Popen(["docker-registry", "serve", str(folder / "config.yml")], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
    for _ in range(200):
        try:
            with urllib.request.urlopen(f"http://{host}/v2/", timeout=1):
                return registry, host
        except OSError:
            time.sleep(0.05)
    registry.terminate()
    raise SystemExit("docker-registry did not start")


def make_image(folder: Path, mib: int) -> Path:
    """A plain OCI layout with one uncompressed layer: FILES files of random bytes, `mib` MiB in all."""
    from tests.guest._images import swap_layer, write_image  # noqa: PLC0415 (test helpers: layouts)

    layer = folder / "layer.tar"
    each = mib * 1024 * 1024 // FILES
    with tarfile.open(layer, "w") as tar:
        for i in range(FILES):
            data = folder / "data"
            data.write_bytes(os.urandom(each))
            tar.add(data, f"data/file-{i:03}")
        data.unlink()
    write_image(folder / "plain", [b""], compression="none")
    swap_layer(folder / "plain", layer)
    return folder / "plain"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--small-mib", type=int, default=64)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()), help="default: TMPDIR")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="veritee-pull-bench-", dir=args.workdir))
    print(f"work dir: {work}; CPUs: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
    # An installed guest runs from compiled bytecode: let the runs cache it (the first of each REPEAT compiles),
    # outside the checkout, rather than compile every module at every start when PYTHONDONTWRITEBYTECODE is set.
    ENV.pop("PYTHONDONTWRITEBYTECODE", None)
    ENV["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    registry = None
    try:
        tools = subprocess.run([str(TOOLS)], capture_output=True, text=True, check=True).stdout.strip()
        registry, host = start_registry(work / "registry")
        key = ec.generate_private_key(ec.SECP256R1())
        private, public = work / "key.pem", work / "pub.pem"
        private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))  # fmt: skip
        public.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        run(f"{tools}/cosign", "generate-key-pair", cwd=work, env={**ENV, "COSIGN_PASSWORD": PASSWORD})
        (work / "pass").write_text(PASSWORD)
        (work / "registries.d").mkdir()
        (work / "registries.d" / "default.yaml").write_text("default-docker:\n  use-sigstore-attachments: true\n")
        policy = {"default": [{"type": "reject"}], "transports": {"docker": {host: [
            {"type": "sigstoreSigned", "keyPath": str(work / "cosign.pub")}]}}}  # fmt: skip
        (work / "policy.json").write_text(json.dumps(policy))
        guest = [sys.executable, "-c", "import sys; from guest.cli import main; sys.exit(main())"]
        results: dict[str, tuple[float, int, int, float]] = {}
        for mib in (args.small_mib, args.mib):
            folder = work / f"{mib}"
            folder.mkdir()
            plain = make_image(folder, mib)
            image = f"{host}/bench/image{mib}:v1"
            run(str(SKOPEO), "--insecure-policy", "copy", "--registries.d", str(work / "registries.d"),
                "--dest-tls-verify=false", "--encryption-key", f"jwe:{public}", "--sign-by-sigstore-private-key",
                str(work / "cosign.key"), "--sign-passphrase-file", str(work / "pass"), f"oci:{plain}:v1",
                f"docker://{image}")  # fmt: skip
            shutil.rmtree(plain)
            with urllib.request.urlopen(urllib.request.Request(
                    f"http://{host}/v2/bench/image{mib}/manifests/v1",
                    headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})) as response:  # fmt: skip
                size = json.loads(response.read())["layers"][0]["size"]
            t, rss, cpu = measure(*guest, "unpack", "--policy", str(work / "policy.json"), "--insecure-registry", host,
                             "--key", f"file:{private}", f"docker://{image}", str(folder / "rootfs"),
                             cleanup=folder / "rootfs")  # fmt: skip
            results[f"guest unpack {mib} MiB"] = (t, rss, size, cpu)
            if mib == args.mib:
                t, rss, cpu = measure(*guest, "decrypt-image", "--policy", str(work / "policy.json"),
                                      "--insecure-registry", host, "--key", f"file:{private}", f"docker://{image}",
                                      f"oci:{folder / 'layout'}", cleanup=folder / "layout")  # fmt: skip
                results[f"guest decrypt {mib} MiB"] = (t, rss, size, cpu)
                t, rss, cpu = measure(str(SKOPEO), "--policy", str(work / "policy.json"), "--registries.d",
                                      str(work / "registries.d"), "copy", "--remove-signatures",
                                      "--src-tls-verify=false", "--decryption-key", str(private), f"docker://{image}",
                                      f"oci:{folder / 'skopeo'}:v1", cleanup=folder / "skopeo")  # fmt: skip
                results[f"skopeo copy {mib} MiB"] = (t, rss, size, cpu)
        print(f"{'contender':<24} {'MB/s':>8} {'seconds':>8} {'CPU s':>7} {'CPU s/MiB':>10} {'peak RSS MiB':>13}")
        for name, (t, rss, size, cpu) in results.items():
            per_mib = cpu / (size / 2**20)
            print(f"{name:<24} {size / t / 1e6:8.0f} {t:8.2f} {cpu:7.2f} {per_mib:10.4f} {rss / 1024:13.1f}")
        big = args.mib
        guest_rate = results[f"guest unpack {big} MiB"][2] / results[f"guest unpack {big} MiB"][0]
        skopeo_rate = results[f"skopeo copy {big} MiB"][2] / results[f"skopeo copy {big} MiB"][0]
        rss_small, rss_big = results[f"guest unpack {args.small_mib} MiB"][1], results[f"guest unpack {big} MiB"][1]
        copy_rate = results[f"guest decrypt {big} MiB"][2] / results[f"guest decrypt {big} MiB"][0]
        print(f"\nguest unpack / skopeo copy throughput: {guest_rate / skopeo_rate:.2f}x (target >= 1.5x)")
        cpu_skopeo = results[f"skopeo copy {big} MiB"][3]
        print(
            f"CPU time, skopeo copy / guest: unpack {cpu_skopeo / results[f'guest unpack {big} MiB'][3]:.2f}x, "
            f"decrypt-image {cpu_skopeo / results[f'guest decrypt {big} MiB'][3]:.2f}x (load average now "
            f"{os.getloadavg()[0]:.2f})"
        )
        print(
            f"guest decrypt-image / skopeo copy (the same output: a decrypted layout): {copy_rate / skopeo_rate:.2f}x"
        )
        print(
            f"guest peak RSS: {rss_small / 1024:.1f} MiB at {args.small_mib} MiB, {rss_big / 1024:.1f} MiB at {big} MiB"
        )
    finally:
        if registry is not None:
            registry.terminate()
            registry.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
