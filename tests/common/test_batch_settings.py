"""The ``batch`` section: defaults, values from the file, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmesh.services.common.batch_settings import BatchConfig
from llmesh.services.common.config import ConfigError, load_config


def _load(tmp_path: Path, text: str) -> BatchConfig:
    path = tmp_path / "llmesh.yaml"
    path.write_text(text)
    return load_config(path, env={}).batch


def test_defaults_and_values(tmp_path: Path) -> None:
    assert _load(tmp_path, "{}\n") == BatchConfig()
    got = _load(tmp_path, "batch: {concurrency: 32, items_per_second: 5, max_attempts: 1}\n")
    assert (got.concurrency, got.items_per_second, got.max_attempts) == (32, 5.0, 1)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("batch: {concurrency: 0}\n", "batch.concurrency"),
        ("batch: {items_per_second: -1}\n", "batch.items_per_second"),
        ("batch: {poll_interval: 0}\n", "batch.poll_interval"),
        ("batch: {workers: 2}\n", "batch: unknown keys ['workers']"),
        ("batch: [1]\n", "batch"),
    ],
)
def test_bad_values_name_their_key(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("]", r"\]")):
        _load(tmp_path, text)
