"""TPM AK enrolment with a Veritee broker: the guest's side of credential activation (kbs/tpm_enrollment.py).

1. send the AK's TPMT_PUBLIC, the EK certificate from NV and the EK's TPMT_PUBLIC to `POST /kbs/v0/tpm/enroll`;
2. run TPM2_ActivateCredential on the broker's credential (only this TPM, holding this AK, can);
3. return the recovered secret to `POST /kbs/v0/tpm/activate`. From then on the broker's verifier reports the
   AK's quotes with `ak_trust: "enrolled"`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from kbs_protocol import (
    BASE_PATH,
    ProtocolError,
    TpmActivateRequest,
    TpmEnrollRequest,
    parse_tpm_credential_challenge,
    parse_tpm_enrolled,
)

from ._http import HttpClient, TransportError
from .attesters import AttesterError
from .attesters.tpm import TpmAttester
from .kbs_client import KbsClientError

__all__ = ["enroll"]


def _post(client: HttpClient, path: str, body: dict[str, Any], step: str) -> dict[str, Any]:
    url = client.origin + client.prefix + path
    try:
        response = client.request("POST", path, json_body=body)
    except TransportError as exc:
        raise KbsClientError(f"cannot reach the broker at {url}: {exc}") from exc
    try:
        document = response.json()
    except ValueError:
        document = {}
    if not isinstance(document, dict):
        document = {}
    if response.status != 200:
        detail = document.get("detail", response.text[:200])
        raise KbsClientError(f"{step} refused by the broker (HTTP {response.status}): {detail}", response.status)
    return document


def enroll(kbs_url: str, attester: TpmAttester, *, verify: bool | str = True, timeout: float = 30.0) -> str:
    """Enrol the attester's AK with the broker; returns the AK's SHA-256 fingerprint (hex)."""
    ek_public, ek_certificate = attester.ek()
    if ek_certificate is None:
        raise AttesterError("this TPM has no EK certificate in NV: enrolment needs one to prove the TPM is genuine")
    request = TpmEnrollRequest(
        ak_public=base64.b64encode(attester.ak_tpmt_public()).decode(),
        ek_certificate=base64.b64encode(ek_certificate).decode(),
        ek_public=base64.b64encode(ek_public).decode(),
    )
    client = HttpClient(kbs_url.rstrip("/") + BASE_PATH, timeout=timeout, verify=verify)
    try:
        try:
            challenge = parse_tpm_credential_challenge(_post(client, "/tpm/enroll", request.to_dict(), "TPM enrolment"))
        except ProtocolError as exc:
            raise KbsClientError(f"the broker's credential is malformed: {exc}") from exc
        try:
            blob = base64.b64decode(challenge.credential_blob, validate=True)
            encrypted = base64.b64decode(challenge.encrypted_secret, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KbsClientError("the broker's credential is not base64") from exc
        secret = attester.activate_credential(blob, encrypted)
        answer = TpmActivateRequest(id=challenge.id, secret=base64.b64encode(secret).decode())
        try:
            enrolled = parse_tpm_enrolled(_post(client, "/tpm/activate", answer.to_dict(), "TPM credential activation"))
        except ProtocolError as exc:
            raise KbsClientError(f"the broker's activation answer is malformed: {exc}") from exc
    finally:
        client.close()
    return enrolled.ak_sha256
