"""The oracle side of the differential suite: runs inside the oracle venv (.cache/oracles, scripts/setup-oracles),
never imports Veritee, and answers one JSON case per line on stdin with one JSON verdict per line on stdout.

    {"oracle": "qvl" | "dcap-qvl", "quote": b64, "collateral": {...}, "at": unix seconds}
    {"oracle": "keylime", "message": b64 TPMS_ATTEST, "signature": b64 TPMT_SIGNATURE, "pcrblob": b64 (tpm2-tools
     layout), "ak_pem": PEM, "nonce": hex, "hash": "sha256"}
    {"oracle": "opa", "modules": [[name, source], ...], "path": "policy", "input": {...}, "data": {...}}

Every verdict is {"accept": bool, "status": str, "detail": str}; `status` is the oracle's own word (a TCB status
for the TDX oracles, an error name otherwise). A case that makes an oracle raise gets accept false; a native
crash ends the process, and the harness then knows which case it was from the verdicts already written.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.DOTALL)

# Intel QVL quote status -> TCB status name as in TCB info (the statuses a verifier reports to policy).
_QVL_TCB = {
    "STATUS_OK": "UpToDate",
    "STATUS_TCB_SW_HARDENING_NEEDED": "SWHardeningNeeded",
    "STATUS_TCB_CONFIGURATION_NEEDED": "ConfigurationNeeded",
    "STATUS_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED": "ConfigurationAndSWHardeningNeeded",
    "STATUS_TCB_OUT_OF_DATE": "OutOfDate",
    "STATUS_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED": "OutOfDateConfigurationNeeded",
}


def _b(text: str) -> bytes:
    return base64.b64decode(text)


def _verdict(accept: bool, status: str, detail: str = "") -> dict[str, Any]:
    return {"accept": accept, "status": status, "detail": detail[:400]}


def _qvl(case: dict[str, Any]) -> dict[str, Any]:
    import sgx_dcap_quote_verify as qvl

    quote = _b(case["quote"])
    c = case["collateral"]
    pems = [p.decode("latin-1") for p in _PEM.findall(quote)]
    at = datetime.fromtimestamp(case["at"], UTC).replace(tzinfo=None)
    result = qvl.verify(
        trusted_root_ca_certificate=c["root_pem"],
        pck_certificate=pems[0] if pems else "",
        pck_signing_chain="\n".join(pems[1:]),
        root_ca_crl=c["root_crl_pem"],
        intermediate_ca_crl=c["pck_crl_pem"],
        tcb_info=c["tcb_info"],
        tcb_signing_chain=c["tcb_chain"],
        quote=quote,
        qe_identity=c["qe_identity"],
        expiration_date=at,
    )
    statuses = {
        "pck": result.pck_certificate_status.name,
        "tcb_info": result.tcb_info_status.name,
        "qe_identity": result.qe_identity_status.name,
        "quote": result.quote_status.name,
    }
    bad = [f"{k}={v}" for k, v in statuses.items() if k != "quote" and v != "STATUS_OK"]
    tcb = _QVL_TCB.get(statuses["quote"])
    if bad or tcb is None:
        return _verdict(False, bad[0].split("=", 1)[1] if bad else statuses["quote"], ", ".join(bad))
    return _verdict(True, tcb)


def _dcap_qvl(case: dict[str, Any]) -> dict[str, Any]:
    import dcap_qvl

    c = case["collateral"]
    collateral = dcap_qvl.QuoteCollateralV3(
        pck_crl_issuer_chain=c["pck_crl_chain"],
        root_ca_crl=_b(c["root_crl_der"]),
        pck_crl=_b(c["pck_crl_der"]),
        tcb_info_issuer_chain=c["tcb_chain"],
        tcb_info=c["tcb_info_inner"],
        tcb_info_signature=bytes.fromhex(c["tcb_info_signature"]),
        qe_identity_issuer_chain=c["tcb_chain"],
        qe_identity=c["qe_identity_inner"],
        qe_identity_signature=bytes.fromhex(c["qe_identity_signature"]),
    )
    root_der = c.get("root_der")
    try:
        if root_der:
            report = dcap_qvl.verify_with_root_ca(_b(case["quote"]), collateral, _b(root_der), int(case["at"]))
        else:
            report = dcap_qvl.verify(_b(case["quote"]), collateral, int(case["at"]))
    except ValueError as exc:
        return _verdict(False, "rejected", str(exc))
    status = report.status
    if status == "Revoked":
        return _verdict(False, status)
    return _verdict(True, status, ",".join(report.advisory_ids))


def _keylime(case: dict[str, Any]) -> dict[str, Any]:
    from keylime.tpm import tpm_util

    try:
        pcrs = tpm_util.checkquote(
            case["ak_pem"].encode(),
            bytes.fromhex(case["nonce"]),
            _b(case["signature"]),
            _b(case["message"]),
            _b(case["pcrblob"]),
            case["hash"],
        )
    except Exception as exc:  # keylime raises bare Exception for a nonce or PCR digest mismatch
        return _verdict(False, type(exc).__name__, str(exc))
    return _verdict(True, "ok", f"{len(pcrs)} PCRs")


def _opa(case: dict[str, Any]) -> dict[str, Any]:
    """OPA's Go engine: the modules, then data, then the document at case["path"] for the input."""
    from opa_bindings.engine import OpaEngine, OpaError, OpaUndefinedError

    with OpaEngine() as engine:
        try:
            for name, source in case["modules"]:
                engine.add_policy(name, source)
            if case.get("data"):
                engine.add_data(case["data"])
            value = engine.eval_document(case["path"], input=case.get("input"))
        except OpaUndefinedError:
            return _verdict(True, "undefined")
        except OpaError as exc:
            return _verdict(False, exc.code, exc.message)
    return {**_verdict(True, "ok"), "value": value}


_ORACLES = {"qvl": _qvl, "dcap-qvl": _dcap_qvl, "keylime": _keylime, "opa": _opa}


def main() -> None:
    for line in sys.stdin:
        case = json.loads(line)
        try:
            verdict = _ORACLES[case["oracle"]](case)
        except Exception as exc:  # reported to the harness, which decides (a refusal or a test failure)
            verdict = _verdict(False, f"oracle raised {type(exc).__name__}", traceback.format_exc(limit=3))
        sys.stdout.write(json.dumps(verdict) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
