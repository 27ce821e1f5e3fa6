"""The optional C extensions (setup.py) in tests: built everywhere CI runs."""

from __future__ import annotations

import os
from types import ModuleType

import pytest


def built(module: ModuleType | None, name: str) -> ModuleType:
    """`module`, the extension `name` as imported; skips the test where it was not built,
    fails it under CI (``CI=true``), where `make venv` builds every extension."""
    if module is None:
        message = f"{name} is not built (setup.py, make venv)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return module
