"""Size limits of content parts and the settings of fetching media URLs, read from config.

The per-part limits live under ``limits`` (beside ``limits.max_message_bytes``, the whole
request's limit); fetching lives in the top-level ``media_fetch`` section, which is absent
(fetching off) unless a deployment allows some hosts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from llmesh.services.common.config_fields import FieldError, bounded, build, check_fields

__all__ = [
    "MEDIA_URL_MODES",
    "MediaFetchConfig",
    "PartLimits",
    "grpc_message_limit",
    "http_body_limit",
    "limits_from_mapping",
]

MiB = 1024 * 1024

MEDIA_URL_MODES = ("pass", "fetch")
"""A provider's ``media_urls``: pass URLs on where its API takes them, or fetch every URL."""


@dataclass(frozen=True)
class PartLimits:
    """The largest content parts accepted, in bytes (``limits.max_*_bytes``).

    The defaults fit the providers' own limits and the 32 MiB request: OpenAI takes images
    up to 20 MiB, Anthropic a 32 MB request (a 24 MiB PDF is 32 MiB in base64), OpenAI's
    audio inputs up to 25 MiB.
    """

    max_image_bytes: int = bounded(20 * MiB, ge=1)
    """The largest image a part may carry (inline or fetched)."""
    max_document_bytes: int = bounded(24 * MiB, ge=1)
    """The largest document a part may carry (inline or fetched)."""
    max_audio_bytes: int = bounded(25 * MiB, ge=1)
    """The largest audio clip a part may carry."""

    def __post_init__(self) -> None:
        check_fields(self)


DEFAULT_MAX_MESSAGE_BYTES = 32 * MiB
"""The default of ``limits.max_message_bytes``: the largest request, serialized."""


_PART_KEYS = ("max_image_bytes", "max_document_bytes", "max_audio_bytes")


def limits_from_mapping(raw: Mapping[str, object]) -> tuple[int, PartLimits]:
    """``limits``: the request's limit and the per-part limits. A part limit left out is its
    default or the request's limit, whichever is smaller; one given must be at most the
    request's (else no part that large could ever pass)."""
    rest = {k: v for k, v in raw.items() if k != "max_message_bytes"}
    request = raw.get("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES)
    if isinstance(request, bool) or not isinstance(request, int) or request < 1:
        raise FieldError("max_message_bytes", f"expected an integer >= 1, got {request!r}")
    parts = build(PartLimits, rest)
    for name in _PART_KEYS:
        if name not in rest:
            parts = replace(parts, **{name: min(getattr(parts, name), request)})
        elif getattr(parts, name) > request:
            raise FieldError(name, f"larger than max_message_bytes ({request})")
    return request, parts


def grpc_message_limit(max_message_bytes: int) -> int:
    """The gRPC servers' and channels' message limit for a request limit: a margin above it,
    so a request a little over the limit gets INVALID_ARGUMENT naming ``input`` (grpc's own
    RESOURCE_EXHAUSTED answers only beyond the margin)."""
    return max_message_bytes + max(MiB, max_message_bytes // 16)


def http_body_limit(max_message_bytes: int) -> int:
    """The gateway's body limit for a request limit: JSON carries bytes in base64 (4/3 of
    their size, a little more where ``/`` is escaped), so a request whose bytes fit the gRPC
    limit is never refused by the body limit; the margin covers the JSON around them."""
    return math.ceil(max_message_bytes * 3 / 2) + MiB


@dataclass(frozen=True)
class MediaFetchConfig:
    """``media_fetch``: fetching a part's URL where the target's provider needs bytes.

    Only hosts in `allow_hosts` are fetched, only over https (http when `allow_http`), only
    when every address the host resolves to is a global one; the connection goes to the
    address checked (no second lookup), redirects are refused, the body is capped.
    """

    allow_hosts: tuple[str, ...] = ()
    """Host names that may be fetched: ``media.example.com`` exactly, or ``*.example.com``
    for its subdomains. Empty: fetching is off."""
    allow_http: bool = False
    """Also fetch plain ``http://`` URLs (off: https only)."""
    max_bytes: int = bounded(20 * MiB, ge=1)
    """The most bytes read from one URL (also capped by the part kind's limit)."""
    timeout: float = bounded(10.0, gt=0)
    """Seconds one fetch may take, connection included."""

    def __post_init__(self) -> None:
        hosts = self.allow_hosts
        if isinstance(hosts, str) or not isinstance(hosts, list | tuple):
            raise FieldError("allow_hosts", f"expected a list of host names, got {hosts!r}")
        for h in hosts:
            if not isinstance(h, str) or not h.strip(".*") or any(c in h for c in "/:@ "):
                raise FieldError("allow_hosts", f"not a host name: {h!r}")
        object.__setattr__(self, "allow_hosts", tuple(h.lower() for h in hosts))
        checked = _Numbers(self.allow_http, self.max_bytes, self.timeout)
        object.__setattr__(self, "timeout", checked.timeout)

    @property
    def enabled(self) -> bool:
        """True when some host may be fetched."""
        return bool(self.allow_hosts)


@dataclass(frozen=True)
class _Numbers:
    """The fields of `MediaFetchConfig` that `check_fields` knows how to check."""

    allow_http: bool
    max_bytes: int = bounded(1, ge=1)
    timeout: float = bounded(1.0, gt=0)

    def __post_init__(self) -> None:
        check_fields(self)
