"""The sample attester: evidence with no hardware behind it, for development and protocol tests only."""

from __future__ import annotations

import base64

__all__ = ["SampleAttester"]

MAX_REPORT_DATA = 64


class SampleAttester:
    tee = "sample"

    def evidence(self, report_data: bytes) -> dict[str, object]:
        if len(report_data) > MAX_REPORT_DATA:
            raise ValueError(f"report data is {len(report_data)} bytes, at most 64")
        return {"svn": "1", "report_data": base64.b64encode(report_data).decode()}

    def bind_init_data(self, digest: bytes) -> None:
        """Nothing to bind: the sample TEE has no measurement registers."""
        del digest
