"""Fixtures for the processor: one warmed set of tokenizers for the whole session."""

from __future__ import annotations

import pytest

from llmesh.services.processor.tokenizers import Tokenizers


@pytest.fixture(scope="session")
def tokenizers() -> Tokenizers:
    """Both exact encodings, loaded once (loading takes most of a second)."""
    t = Tokenizers()
    t.warm()
    return t
