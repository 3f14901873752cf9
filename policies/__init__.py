"""Veritee's default Rego policies (package data) and the names they are known by.

- `resource.rego`: the default resource policy: release only when every submod of the EAR is affirming and the
  TEE is not the sample TEE. It also yields `reasons` (the denial message; `policy explain` needs none).
- `<tee>.rego`: the default attestation policy of each TEE and device TEE (`sampledevice`), in trustee's model
  (`trust_claims`, `query_reference_value`; docs/tokens-and-policies.md), fail closed, with `<tee>_test.rego` unit
  tests.
- `demo_resource_allow_sample.rego`: the README demo's resource policy, which admits the sample TEE. Never a default.
"""

from __future__ import annotations

from importlib import resources

__all__ = ["attestation_default", "load", "names"]


def load(name: str) -> str:
    """The source of a shipped policy by file name (`resource.rego`)."""
    if "/" in name or name.startswith("."):
        raise ValueError(f"policy name {name!r} is not a file name")
    return resources.files(__name__).joinpath(name).read_text()


def names() -> list[str]:
    return sorted(p.name for p in resources.files(__name__).iterdir() if p.name.endswith(".rego"))


def attestation_default(tee: str) -> str | None:
    """The shipped default attestation policy of a TEE, or None when there is none."""
    name = f"{tee}.rego"
    return load(name) if name in names() else None
