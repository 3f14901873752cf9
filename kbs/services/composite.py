"""Composite attestation: the devices a guest sends in `additional_evidence` beside its primary evidence.

`additional_evidence` is a JSON string of `{"<device tee>": <evidence>}` (guest-components' composite attester).
Each device is verified through the verifier's TEE registry (`verifier.attest`, its `Tee` declaring its class
and its binding rule), bound to the device digest SHA-384(JCS({"nonce",
"tee-pubkey"})) (the primary evidence binds the whole string instead), appraised with its class's policy
(`default_gpu`, ...), and reported as its own EAR submod (`gpu0`, `gpu1`, ... in the order sent). A device whose
evidence fails verification is reported, contraindicated with the reason, never dropped: the resource policy decides.
The string is parsed before the session's nonce is spent, so a malformed one leaves nothing behind.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import verifier
from verifier.appraisal import AR4SI_CLAIMS, Appraisal, Status
from verifier.ear import DeviceAppraisal
from verifier.rego import PolicyError

from ..errors import KbsError
from ..protocol import device_runtime_digest
from ..verification import VerifierInputs
from .policies import compiled


class DevicePolicies(Protocol):
    """Where a device's attestation policy comes from: (policy id, Rego source) by TEE and class."""

    def attestation_policy(self, tee: str, tee_class: str = "cpu") -> tuple[str, str]: ...


__all__ = ["MAX_ADDITIONAL_EVIDENCE_BYTES", "MAX_DEVICES", "Device", "appraise_devices", "parse_additional_evidence"]

MAX_ADDITIONAL_EVIDENCE_BYTES = 512 * 1024
MAX_DEVICES = 16
# AR4SI "hardware" 97: the verifier does not recognise the device's evidence as genuine (draft-ietf-rats-ar4si).
_UNRECOGNISED_HARDWARE = 97


@dataclass(frozen=True)
class Device:
    tee: str
    tee_class: str
    evidence: Mapping[str, Any]


def parse_additional_evidence(text: str) -> list[Device]:
    """The devices of an `additional_evidence` string ("" for none); KbsError 400/413 naming what is wrong."""
    if not text:
        return []
    size = len(text.encode())
    if size > MAX_ADDITIONAL_EVIDENCE_BYTES:
        raise KbsError.too_large(
            f"tee-evidence.additional_evidence is {size} bytes, at most {MAX_ADDITIONAL_EVIDENCE_BYTES} accepted"
        )
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise KbsError.invalid_request(f"tee-evidence.additional_evidence is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise KbsError.invalid_request(
            f"tee-evidence.additional_evidence is a JSON {type(document).__name__}, expected an object of "
            '{"<device tee>": <evidence>}'
        )
    if len(document) > MAX_DEVICES:
        raise KbsError.invalid_request(
            f"tee-evidence.additional_evidence has {len(document)} devices, at most {MAX_DEVICES}"
        )
    devices = []
    for tee, evidence in document.items():
        tee_class = verifier.DEVICE_TEES.get(tee)
        if tee_class is None:
            raise KbsError.invalid_request(
                f"tee-evidence.additional_evidence: device tee {tee!r} is not one of {sorted(verifier.DEVICE_TEES)}"
            )
        if not isinstance(evidence, dict):
            raise KbsError.invalid_request(
                f"tee-evidence.additional_evidence.{tee} is a JSON {type(evidence).__name__}, expected an object"
            )
        devices.append(Device(tee=tee, tee_class=tee_class, evidence=evidence))
    return devices


def appraise_devices(
    devices: list[Device],
    *,
    runtime_data: Mapping[str, Any],
    inputs: VerifierInputs,
    policies: DevicePolicies,
    references: Mapping[str, object],
    at: datetime,
) -> dict[str, DeviceAppraisal]:
    """Each device verified and appraised on its own: submod name -> its appraisal. A policy that fails is an
    error (KbsError 401), as it is for the primary evidence."""
    binding = verifier.Binding(
        runtime_digest=device_runtime_digest(runtime_data["nonce"], runtime_data["tee-pubkey"]),
        runtime_data=runtime_data,
    )
    seen: Counter[str] = Counter()
    submods: dict[str, DeviceAppraisal] = {}
    for device in devices:
        name = f"{device.tee_class}{seen[device.tee_class]}"
        seen[device.tee_class] += 1
        policy_id, source = policies.attestation_policy(device.tee, device.tee_class)
        try:
            appraisal = verifier.attest(
                device.tee,
                device.evidence,
                binding=binding,
                options=inputs.options(at=at),
                policy=compiled(source),
                policy_id=policy_id,
                reference_values=references,
            )
        except verifier.VerifierError as exc:
            vector = dict.fromkeys(AR4SI_CLAIMS, 0) | {"hardware": _UNRECOGNISED_HARDWARE}
            refused = Appraisal(
                policy_id=policy_id, vector=vector, status=Status.CONTRAINDICATED, annotated_evidence={device.tee: {}}
            )
            error = {"reason": exc.reason.value, "detail": exc.detail}
            submods[name] = DeviceAppraisal(appraisal=refused, error=error)
        except PolicyError as exc:
            raise KbsError.attestation_failed(f"attestation policy {policy_id} failed on {name}: {exc}") from exc
        else:
            submods[name] = DeviceAppraisal(appraisal=appraisal)
    return submods
