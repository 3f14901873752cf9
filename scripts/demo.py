"""The end-to-end demo: a broker on SQLite, an admin provisioning a secret, a guest attesting with a TPM and
fetching it; then an encrypted image unpacked from a layout, and the same image, signed, pulled from a local
registry under a signature policy that the broker holds.

Every step runs the real console scripts (`kbs`, `attestation-agent`) as a user would. The guest's TPM is
/dev/tpmrm0 (or /dev/tpm0, or $VERITEE_TPM_TCTI) when there is one; otherwise the demo starts a software TPM
(swtpm) manufactured with an EK certificate by a throw-away local CA, which the broker is configured to trust, and
enrols the TPM's attestation key by credential activation. `--sample` runs the old sample-TEE demo instead.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def script(name: str, module: str) -> list[str]:
    """The installed console script, or the same entry point through this interpreter (a source checkout)."""
    path = BIN / name
    return [str(path)] if path.exists() else [sys.executable, "-m", module]


def run(*args: str) -> subprocess.CompletedProcess[bytes]:
    print("    $ " + " ".join(args), flush=True)
    return subprocess.run(args, check=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, server: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if server.poll() is not None:
            raise SystemExit(f"kbs serve exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("kbs serve did not become ready")


def encrypted_image_demo(work: Path, url: str, admin: list[str]) -> Path:
    """Encrypt a small image for key id kbs:///default/image-kek/1, then attest, decrypt and unpack it; returns the
    encrypted image layout."""
    step("owner: a small image built with umoci (one file, /etc/hello.txt)")
    content = work / "content" / "etc"
    content.mkdir(parents=True)
    (content / "hello.txt").write_text("Hello from inside an encrypted container image!\n")
    plain, encrypted = work / "image", work / "image-encrypted"
    run("umoci", "init", "--layout", str(plain))
    run("umoci", "new", "--image", f"{plain}:v1")
    run("umoci", "insert", "--image", f"{plain}:v1", str(content), "/etc")

    kid = "kbs:///default/image-kek/1"
    which = subprocess.run([str(ROOT / "scripts" / "skopeo-keyprovider"), "--which"], capture_output=True, check=False)
    if which.returncode == 0:
        step(f"owner: skopeo encrypts every layer; `kbs admin keyprovider` wraps the layer keys with the KEK at {kid}")
        config = work / "ocicrypt-keyprovider.json"
        provider = {"cmd": {"path": admin[0], "args": [*admin[1:], "keyprovider"]}}
        config.write_text(json.dumps({"key-providers": {"attestation-agent": provider}}))
        env = {**os.environ, "OCICRYPT_KEYPROVIDER_CONFIG": str(config)}
        print(f"    $ OCICRYPT_KEYPROVIDER_CONFIG={config} skopeo-keyprovider copy --encryption-key provider:...")
        subprocess.run(
            [str(ROOT / "scripts" / "skopeo-keyprovider"), "--insecure-policy", "copy", "--encryption-key",
             f"provider:attestation-agent:{kid}", f"oci:{plain}:v1", f"oci:{encrypted}:v1"],
            check=True, env=env,
        )  # fmt: skip
    else:
        step("owner: no skopeo with key providers here; encrypting with Veritee's ocicrypt-compatible encryptor")
        print(f"    ({which.stderr.decode().strip()})")
        kek = os.urandom(32)
        (work / "image-kek.bin").write_bytes(kek)
        run(*admin, "resource", "put", kid.removeprefix("kbs:///"), str(work / "image-kek.bin"))
        from guest._encrypt import encrypt_image, provider_recipient  # noqa: PLC0415

        encrypt_image(plain, encrypted, provider_recipient(kek, kid), tag="v1")
    manifest = json.loads((encrypted / "index.json").read_text())["manifests"][0]["digest"].split(":")[1]
    layers = json.loads((encrypted / "blobs" / "sha256" / manifest).read_text())["layers"]
    print(f"    encrypted layers: {[layer['mediaType'] for layer in layers]}")

    step("guest: attest to the KBS, fetch the KEK named by the layer's kid, decrypt (HMAC first) and unpack")
    rootfs = work / "rootfs"
    run(*script("guest", "guest.cli"), "unpack", "--kbs", url, f"oci:{encrypted}:v1", str(rootfs))
    print(f"    $ cat {rootfs / 'etc' / 'hello.txt'}")
    print("    " + (rootfs / "etc" / "hello.txt").read_text().strip())
    return encrypted


def tool(name: str) -> str:
    if name == "cosign":
        done = subprocess.run([str(ROOT / "scripts" / "trixie-tools")], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"cosign is not available: {done.stderr.strip()}")
        return str(Path(done.stdout.strip()) / name)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} is not installed (scripts/setup installs it)")
    return found


def registry_demo(work: Path, url: str, admin: list[str], encrypted: Path) -> None:
    """Push the encrypted image to a local registry with a sigstore signature, put the signature policy and the
    public key in the broker (CoCo's resource names), and pull, verify, decrypt and unpack it in the guest."""
    folder = work / "registry"
    folder.mkdir()
    host = f"127.0.0.1:{free_port()}"
    step(f"registry: Debian's docker-registry (the CNCF distribution registry) on {host}")
    config = {"version": 0.1, "log": {"level": "error", "accesslog": {"disabled": True}},
              "storage": {"filesystem": {"rootdirectory": str(folder / "data")}}, "http": {"addr": host}}  # fmt: skip
    (folder / "config.yml").write_text(json.dumps(config))
    with (folder / "registry.log").open("wb") as log:
        registry = subprocess.Popen([tool("docker-registry"), "serve", str(folder / "config.yml")], stdout=log,
                                    stderr=log)  # fmt: skip
    try:
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"http://{host}/v2/", timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        step("owner: a cosign key pair; skopeo pushes the encrypted image and signs it (sigstore attachment)")
        env = {**os.environ, "COSIGN_PASSWORD": "demo-only-passphrase"}
        print("    $ cosign generate-key-pair")
        subprocess.run([tool("cosign"), "generate-key-pair"], cwd=folder, env=env, check=True, capture_output=True)
        (folder / "passphrase").write_text(env["COSIGN_PASSWORD"])
        (folder / "registries.d").mkdir()
        (folder / "registries.d" / "default.yaml").write_text("default-docker:\n  use-sigstore-attachments: true\n")
        image = f"{host}/demo/hello:v1"
        run(str(ROOT / "scripts" / "skopeo-keyprovider"), "--insecure-policy", "copy", "--registries.d",
            str(folder / "registries.d"), "--dest-tls-verify=false", "--sign-by-sigstore-private-key",
            str(folder / "cosign.key"), "--sign-passphrase-file", str(folder / "passphrase"), f"oci:{encrypted}:v1",
            f"docker://{image}")  # fmt: skip

        step("admin: the signature policy and the public key into the broker (default/security-policy, "
             "default/cosign-public-key)")  # fmt: skip
        policy = {"default": [{"type": "reject"}], "transports": {"docker": {f"{host}/demo": [
            {"type": "sigstoreSigned", "keyPath": "kbs:///default/cosign-public-key/demo"}]}}}  # fmt: skip
        (folder / "policy.json").write_text(json.dumps(policy, indent=1))
        print("    " + json.dumps(policy))
        run(*admin, "resource", "put", "default/security-policy/demo", str(folder / "policy.json"))
        run(*admin, "resource", "put", "default/cosign-public-key/demo", str(folder / "cosign.pub"))

        step("guest: pull from the registry; the policy and key come from the broker; the signature is checked "
             "before any layer is fetched; then decrypt and unpack")  # fmt: skip
        rootfs = work / "rootfs-pulled"
        run(*script("guest", "guest.cli"), "unpack", "--kbs", url, "--policy", "kbs:///default/security-policy/demo",
            "--insecure-registry", host, f"docker://{image}", str(rootfs))  # fmt: skip
        print(f"    $ cat {rootfs / 'etc' / 'hello.txt'}")
        print("    " + (rootfs / "etc" / "hello.txt").read_text().strip() + "  (pulled, verified, decrypted)")
    finally:
        registry.terminate()
        registry.wait(timeout=10)


def free_port_pair() -> tuple[int, int]:
    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port, port + 1
    raise SystemExit("no free pair of loopback ports for swtpm")


class SoftwareTpm:
    """swtpm on free loopback ports with an EK certificate from a local CA (swtpm_setup + swtpm_localca)."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.ca = work / "ca"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> str:
        for tool in ("swtpm", "swtpm_setup", "swtpm_localca"):
            if shutil.which(tool) is None:
                raise SystemExit(f"no TPM device and no {tool}: install the apt packages swtpm swtpm-tools")
        state = self.work / "state"
        state.mkdir(parents=True)
        self.ca.mkdir()
        localca = self.work / "swtpm-localca.conf"
        localca.write_text(
            f"statedir = {self.ca}\nsigningkey = {self.ca}/signkey.pem\n"
            f"issuercert = {self.ca}/issuercert.pem\ncertserial = {self.ca}/certserial\n"
        )
        setup = self.work / "swtpm_setup.conf"
        setup.write_text(
            f"create_certs_tool = {shutil.which('swtpm_localca')}\ncreate_certs_tool_config = {localca}\n"
            "create_certs_tool_options = /etc/swtpm-localca.options\n"
        )
        print(f"    $ swtpm_setup --tpm2 --tpmstate {state} --create-ek-cert --create-platform-cert ...", flush=True)
        subprocess.run(
            [str(shutil.which("swtpm_setup")), "--tpm2", "--tpmstate", str(state), "--config", str(setup),
             "--create-ek-cert", "--create-platform-cert", "--pcr-banks", "sha256", "--overwrite"],
            check=True, capture_output=True,
        )  # fmt: skip
        # tpm2-tss's swtpm TCTI talks to the control channel on the server port + 1.
        self.port, control = free_port_pair()
        self.process = subprocess.Popen(
            [str(shutil.which("swtpm")), "socket", "--tpm2",
             "--server", f"type=tcp,port={self.port},bindaddr=127.0.0.1",
             "--ctrl", f"type=tcp,port={control},bindaddr=127.0.0.1", "--tpmstate", f"dir={state}",
             "--flags", "not-need-init,startup-clear"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return f"swtpm:host=127.0.0.1,port={self.port}"
            except OSError:
                time.sleep(0.05)
        raise SystemExit("swtpm did not start")

    def ca_certificates(self) -> list[Path]:
        return [self.ca / "swtpm-localca-rootca-cert.pem", self.ca / "issuercert.pem"]

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


def has_tpm_device() -> bool:
    return bool(os.environ.get("VERITEE_TPM_TCTI")) or any(Path(p).exists() for p in ("/dev/tpmrm0", "/dev/tpm0"))


def demo(sample: bool) -> int:
    """The whole demo. With `sample`, the hardware-less sample TEE and a demo resource policy that admits it;
    otherwise the machine's TPM, or swtpm when it has none, under the default policies."""
    work = Path(tempfile.mkdtemp(prefix="veritee-demo-"))
    kbs, agent = script("kbs", "kbs.cli"), script("attestation-agent", "attestation_agent.cli")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    admin = [*kbs, "admin", "--url", url, "--token", str(work / "kbs" / "admin.token")]
    server: subprocess.Popen[bytes] | None = None
    software: SoftwareTpm | None = None
    try:
        if sample:
            pass
        elif has_tpm_device():
            step("guest TPM: the machine's own (device node or $VERITEE_TPM_TCTI)")
        else:
            step("guest TPM: none on this machine, so start swtpm with an EK certificate from a local CA")
            software = SoftwareTpm(work / "swtpm")
            os.environ["VERITEE_TPM_TCTI"] = software.start()
            print(f"    VERITEE_TPM_TCTI={os.environ['VERITEE_TPM_TCTI']}")

        allowed = "allowed" if sample else "refused"
        step(f"kbs init: configuration, key-encryption key, admin key pair and admin token (sample TEE {allowed})")
        run(*kbs, "init", str(work / "kbs"), *(["--allow-sample"] if sample else []))
        if software is not None:
            anchors = ", ".join(f'"{p}"' for p in software.ca_certificates())
            with (work / "kbs" / "kbs.toml").open("a") as config:
                config.write(f"# the demo's software TPM: its EK certificate's CA\ntrust = {{ tpm = [{anchors}] }}\n")
            print("    [verifier] trust.tpm = the swtpm local CA (EK certificates it issued are genuine to us)")

        step(f"kbs serve on {url} (SQLite in {work / 'kbs'})")
        log = (work / "kbs-serve.log").open("wb")
        server = subprocess.Popen(
            [*kbs, "serve", "--config", str(work / "kbs" / "kbs.toml"), "--port", str(port)], stdout=log, stderr=log
        )
        wait_ready(url, server)

        if sample:
            step("admin: the reference value sample_svn and the DEMO resource policy that admits the sample TEE")
            run(*admin, "reference-value", "put", "sample_svn", "1")
            run(*admin, "policy", "set", "resource", str(ROOT / "policies" / "demo_resource_allow_sample.rego"))
        else:
            trust_the_tpm(agent, admin, url, enrol=software is not None)

        step("admin: provision the secret default/key/1")
        secret = os.urandom(32)
        (work / "secret.bin").write_bytes(secret)
        run(*admin, "resource", "put", "default/key/1", str(work / "secret.bin"))

        step("guest: attestation-agent get-resource (auth, attest with evidence bound to nonce + key, JWE fetch)")
        out = work / "released.bin"
        run(*agent, "get-resource", "--kbs", url, "kbs:///default/key/1", "--out", str(out))
        released = out.read_bytes()
        if released != secret:
            print("released secret differs from the provisioned one", file=sys.stderr)
            return 1
        print(f"    released secret sha256: {hashlib.sha256(released).hexdigest()} (matches the provisioned one)")

        encrypted = encrypted_image_demo(work, url, admin)

        step("admin: the audit log records the releases (never the secret)")
        run(*admin, "audit", "--limit", "5")

        registry_demo(work, url, admin, encrypted)
        print("\ndemo: OK")
        return 0
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        if software is not None:
            software.stop()
        shutil.rmtree(work, ignore_errors=True)


def trust_the_tpm(agent: list[str], admin: list[str], url: str, *, enrol: bool) -> None:
    """Make the default TPM policy affirm this guest: its AK trusted (enrolled by credential activation when the
    EK certificate's CA is configured, else by fingerprint) and its PCR0 a reference value."""
    step("guest: read the TPM's current PCRs (evidence for a throw-away nonce)")
    print(f"    $ {' '.join(agent)} evidence --tee tpm --report-data 00", flush=True)
    done = subprocess.run(
        [*agent, "evidence", "--tee", "tpm", "--report-data", "00"], check=True, stdout=subprocess.PIPE
    )
    evidence = json.loads(done.stdout)
    pcr0 = evidence["tpm_quote"]["pcrs"]["sha256"]["0"]
    ak_sha256 = hashlib.sha256(base64.b64decode(evidence["ak_public"])).hexdigest()
    print(f"    PCR0 (sha256) = {pcr0}\n    AK sha256      = {ak_sha256}")
    if enrol:
        step("guest: enrol the AK by credential activation (EK certificate + TPM2_ActivateCredential)")
        run(*agent, "tpm-enroll", "--kbs", url)
    else:
        step("admin: trust this TPM's AK by fingerprint (no EK root configured for this machine's TPM)")
        run(*admin, "reference-value", "put", "tpm_ak_sha256", ak_sha256)
    step("admin: the reference value tpm_pcr0 (the demo trusts the PCR0 it just read; production provisions")
    print("    known-good values)")
    run(*admin, "reference-value", "put", "tpm_pcr0", pcr0)


def main() -> int:
    return demo(sample="--sample" in sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
