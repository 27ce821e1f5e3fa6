"""The ``limits`` part sizes, the ``media_fetch`` section and ``providers.*.media_urls``, as
loaded from a configuration file: typed, checked, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmesh.services.common.config import ConfigError, load_config
from llmesh.services.common.media_settings import MediaFetchConfig, PartLimits

MiB = 1024 * 1024


def _load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return load_config(path, env={})


def test_limits_and_fetching_load_typed(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        "limits: {max_message_bytes: 8388608, max_image_bytes: 1048576}\n"
        "media_fetch: {allow_hosts: [Media.Example.com, '*.cdn.example.com'], timeout: 3}\n"
        "providers: {ollama: {base_url: 'http://localhost:11434/v1', media_urls: fetch}}\n",
    )
    assert config.max_message_bytes == 8 * MiB  # type: ignore[attr-defined]
    limits = PartLimits(max_image_bytes=MiB, max_document_bytes=8 * MiB, max_audio_bytes=8 * MiB)
    assert config.part_limits == limits  # type: ignore[attr-defined]
    fetch = config.media_fetch  # type: ignore[attr-defined]
    assert fetch == MediaFetchConfig(
        allow_hosts=("media.example.com", "*.cdn.example.com"), timeout=3.0
    )
    assert fetch.enabled
    assert config.providers["ollama"].media_urls == "fetch"  # type: ignore[attr-defined]


def test_fetching_is_off_by_default(tmp_path: Path) -> None:
    config = _load(tmp_path, "{}\n")
    assert not config.media_fetch.enabled  # type: ignore[attr-defined]
    assert config.providers["openai"].media_urls == "pass"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("limits: {max_image_bytes: 0}", "limits.max_image_bytes: expected an integer >= 1"),
        ("limits: {max_message_bytes: x}", "limits.max_message_bytes: expected an integer"),
        ("limits: {max_video_bytes: 1}", "limits: unknown keys ['max_video_bytes']"),
        (
            "limits: {max_message_bytes: 4194304, max_image_bytes: 5000000}",
            "limits.max_image_bytes: larger than max_message_bytes (4194304)",
        ),
        ("media_fetch: {allow_hosts: a.com}", "media_fetch.allow_hosts: expected a list"),
        ("media_fetch: {allow_hosts: ['https://a.com']}", "media_fetch.allow_hosts: not a host"),
        ("media_fetch: {max_bytes: -1}", "media_fetch.max_bytes: expected an integer >= 1"),
        ("media_fetch: {proxy: x}", "media_fetch: unknown keys ['proxy']"),
        (
            "providers: {o: {base_url: 'http://x', media_urls: always}}",
            "providers.o.media_urls: 'always' is not one of ('pass', 'fetch')",
        ),
    ],
)
def test_bad_values_name_their_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text + "\n")
    assert message in str(caught.value)
