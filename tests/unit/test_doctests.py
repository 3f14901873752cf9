"""The runnable examples in module docstrings (each package shows one) stay true."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ("verifier", "kbs", "kbs_protocol", "policies", "guest", "attestation_agent")
# Modules whose import needs optional hardware libraries are still importable here (tpm2-pytss is installed).
MODULES = sorted(
    {
        info.name
        for package in PACKAGES
        for info in pkgutil.walk_packages(importlib.import_module(package).__path__, f"{package}.")
        if ".migrations" not in info.name
    }
    | set(PACKAGES)
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert failures == 0, f"{name}: {failures} docstring example(s) failed"
