"""TPM AK enrolment with a Veritee broker: the guest's side of credential activation (kbs/services/tpm.py).

1. send the AK's TPMT_PUBLIC, the EK certificate from NV and the EK's TPMT_PUBLIC to `POST /kbs/v0/tpm/enroll`;
2. run TPM2_ActivateCredential on the broker's credential (only this TPM, holding this AK, can);
3. return the recovered secret to `POST /kbs/v0/tpm/activate`. From then on the broker's verifier reports the
   AK's quotes with `ak_trust: "enrolled"`.

Failover, on the schedule of `kbs_client.KbsClient` (its retry loop, `_retry.Backoff`): the broker keeps the open
challenge in its database (table kbs_tpm_enrollment), so every replica on that database can take step 3 for a
challenge another replica issued. Step 3 is not idempotent: the broker deletes the challenge as it reads the answer,
and an answer sent again is refused 401 "already answered". So:

- step 1 unanswered (refused, cut off, 429/502/503/504): the exchange starts again on the next URL;
- step 3 refused at connect (the request surely reached no broker): the same answer goes to the next URL;
- step 3 cut off after it may have been sent, or answered 429/502/503/504, or 401 `UnAuthorized` (the challenge is
  gone: expired, or taken by an answer whose reply was lost): the exchange starts again on the next URL, with a new
  challenge and a new TPM2_ActivateCredential. Enrolling an AK that is already enrolled is harmless (the broker
  merges the row), so an activation the broker accepted but never confirmed costs one more exchange, nothing else.

A 401 `AttestationFailed` (untrusted EK certificate, wrong secret) is a judgement, and is not retried.
"""

from __future__ import annotations

import base64
import binascii

from kbs_protocol import (
    ProtocolError,
    TpmActivateRequest,
    TpmEnrollRequest,
    parse_tpm_credential_challenge,
    parse_tpm_enrolled,
)

from .attesters import AttesterError
from .attesters.tpm import TpmAttester
from .kbs_client import KbsClient, KbsClientError, _Unavailable, check_response

__all__ = ["enroll"]


def _request(attester: TpmAttester) -> TpmEnrollRequest:
    ek_public, ek_certificate = attester.ek()
    if ek_certificate is None:
        raise AttesterError("this TPM has no EK certificate in NV: enrolment needs one to prove the TPM is genuine")
    return TpmEnrollRequest(
        ak_public=base64.b64encode(attester.ak_tpmt_public()).decode(),
        ek_certificate=base64.b64encode(ek_certificate).decode(),
        ek_public=base64.b64encode(ek_public).decode(),
    )


class _Enrolment:
    """One enrolment's attempts (`attempt`, run by KbsClient's retry loop), and the answer of step 3 while it may
    still be sent to another replica."""

    def __init__(self, client: KbsClient, attester: TpmAttester) -> None:
        self.client = client
        self.attester = attester
        self.request = _request(attester)
        self.unsent: TpmActivateRequest | None = None  # refused at connect: the challenge is still open

    def _challenge_answer(self) -> TpmActivateRequest:
        response = self.client._request("POST", "/tpm/enroll", json_body=self.request.to_dict())
        try:
            challenge = parse_tpm_credential_challenge(check_response(response, "TPM enrolment"))
        except ProtocolError as exc:
            raise KbsClientError(f"the broker's credential is malformed: {exc}") from exc
        try:
            blob = base64.b64decode(challenge.credential_blob, validate=True)
            encrypted = base64.b64decode(challenge.encrypted_secret, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KbsClientError("the broker's credential is not base64") from exc
        secret = self.attester.activate_credential(blob, encrypted)
        return TpmActivateRequest(id=challenge.id, secret=base64.b64encode(secret).decode())

    def attempt(self) -> str:
        answer = self.unsent or self._challenge_answer()
        self.unsent = None
        try:
            response = self.client._request("POST", "/tpm/activate", json_body=answer.to_dict())
        except _Unavailable as exc:
            if exc.unsent:
                self.unsent = answer
            raise
        try:
            return parse_tpm_enrolled(check_response(response, "TPM credential activation")).ak_sha256
        except KbsClientError as exc:
            if exc.session_lost:
                raise _Unavailable(f"the broker at {self.client.base} no longer holds the challenge: {exc}") from exc
            raise
        except ProtocolError as exc:
            raise KbsClientError(f"the broker's activation answer is malformed: {exc}") from exc


def enroll(client: KbsClient) -> str:
    """Enrol the AK of the client's TPM attester with its brokers (KbsClient: one URL, or replicas' URLs to fail over
    between); returns the AK's SHA-256 fingerprint (hex). The caller closes the client."""
    attester = client.attester
    if not isinstance(attester, TpmAttester):
        raise AttesterError(f"TPM enrolment needs the TPM attester, not {attester.tee}")
    return client._with_retries(_Enrolment(client, attester).attempt)
