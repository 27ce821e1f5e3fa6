"""Which part URLs a provider needs as bytes, and getting those bytes once per call.

A URL goes to the provider untouched where its API takes one: images at every provider,
documents at Anthropic (``url`` sources). OpenAI's chat API takes documents only as
``file_data`` bytes, and a provider set to ``media_urls: fetch`` (a server that wants bytes,
e.g. Ollama) takes every part as bytes. Before an attempt at such a provider, `CallMedia`
fetches the URLs it needs through the `MediaFetcher` (only when ``media_fetch`` allows some
hosts; otherwise the call is INVALID_REQUEST naming the part and how to enable fetching).
Each URL is fetched at most once per call, so a retry, a hedge or a fallback to another
provider that needs bytes reuses the bytes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace

from llmesh.services.common.config import Config
from llmesh.services.common.errors import FieldViolation, LlmeshError, Reason
from llmesh.services.common.media_settings import PartLimits
from llmesh.services.core.chat import (
    DOCUMENT_MEDIA_TYPES,
    IMAGE_MEDIA_TYPES,
    ChatRequest,
    ContentPart,
    DocumentPart,
    ImagePart,
)
from llmesh.services.orchestrator.providers.media_fetch import Fetched, FetchError, MediaFetcher

__all__ = ["CallMedia", "MediaNeeds", "MediaPlan", "needs_for"]

_log = logging.getLogger("llmesh.orchestrator.media")


@dataclass(frozen=True, slots=True)
class MediaNeeds:
    """Which URL parts one provider must receive as bytes."""

    images: bool = False
    documents: bool = False

    def of(self, part: ContentPart) -> bool:
        """Whether `part` is a URL this provider needs as bytes."""
        if isinstance(part, ImagePart):
            return self.images and bool(part.url)
        if isinstance(part, DocumentPart):
            return self.documents and bool(part.url)
        return False


def needs_for(kind: str, media_urls: str) -> MediaNeeds:
    """What a provider of adapter `kind` with ``media_urls`` set so needs as bytes."""
    every = media_urls == "fetch"
    if kind in ("anthropic", "local"):
        return MediaNeeds(images=every, documents=every)
    return MediaNeeds(images=every, documents=True)  # the OpenAI wire: documents as bytes


class MediaPlan:
    """The needs of every provider, the fetcher (None: fetching off) and the part limits."""

    def __init__(
        self,
        needs: Mapping[str, MediaNeeds],
        fetcher: MediaFetcher | None,
        limits: PartLimits | None = None,
    ) -> None:
        self.needs = dict(needs)
        self.fetcher = fetcher
        self.limits = limits or PartLimits()

    @classmethod
    def from_config(cls, config: Config, fetcher: MediaFetcher | None = None) -> MediaPlan:
        """The plan a configuration implies; `fetcher` replaces the one `media_fetch` builds
        (tests pass one with a resolver and dialer of their own)."""
        if fetcher is None and config.media_fetch.enabled:
            fetcher = MediaFetcher(config.media_fetch)
        needs = {n: needs_for(p.kind, p.media_urls) for n, p in config.providers.items()}
        return cls(needs, fetcher, config.part_limits)

    def for_call(self) -> CallMedia:
        """The state of one call: the bytes fetched so far."""
        return CallMedia(self)


class CallMedia:
    """One call's view of the plan: turns URL parts into bytes for a provider, once a URL."""

    def __init__(self, plan: MediaPlan) -> None:
        self._plan = plan
        self._fetched: dict[tuple[str, str], asyncio.Future[Fetched]] = {}

    async def prepare(
        self, provider: str, request: ChatRequest, timeout: float | None
    ) -> ChatRequest:
        """The request as `provider` must receive it (unchanged when it needs no bytes)."""
        needs = self._plan.needs.get(provider)
        if needs is None or not any(needs.of(p) for m in request.messages for p in m.parts):
            return request
        messages = list(request.messages)
        for i, m in enumerate(messages):
            if not any(needs.of(p) for p in m.parts):
                continue
            parts = list(m.parts)
            for k, part in enumerate(parts):
                if needs.of(part):
                    parts[k] = await self._as_bytes(provider, part, i, k, timeout)
            messages[i] = replace(m, parts=tuple(parts))
        return replace(request, messages=tuple(messages))

    async def _as_bytes(
        self, provider: str, part: ContentPart, i: int, k: int, timeout: float | None
    ) -> ContentPart:
        is_image = isinstance(part, ImagePart)
        assert isinstance(part, ImagePart | DocumentPart)
        path = f"input.messages[{i}].parts[{k}].{'image' if is_image else 'document'}.url"
        fetcher = self._plan.fetcher
        if fetcher is None:
            raise _refused(
                path,
                f"provider {provider!r} takes this part only as bytes, and fetching URLs is "
                "off: send the bytes, or allow the host in media_fetch.allow_hosts",
            )
        key = ("image" if is_image else "document", part.url)
        future = self._fetched.get(key)
        if future is None:
            if is_image:
                types, cap = IMAGE_MEDIA_TYPES, self._plan.limits.max_image_bytes
            else:
                types = frozenset({part.media_type}) & DOCUMENT_MEDIA_TYPES
                cap = self._plan.limits.max_document_bytes
            future = asyncio.ensure_future(fetcher.fetch(part.url, types, cap, timeout))
            future.add_done_callback(_retrieve)
            self._fetched[key] = future
        try:
            fetched = await asyncio.shield(future)
        except FetchError as exc:
            _log.info("not fetching %s for %s: %s", path, provider, exc)
            raise _refused(path, f"cannot use this URL for provider {provider!r}: {exc}") from None
        if isinstance(part, ImagePart):
            return ImagePart(data=fetched.data, media_type=fetched.media_type, detail=part.detail)
        return DocumentPart(fetched.data, fetched.media_type, part.title)

    def cancel(self) -> None:
        """Stop the fetches still running (the call ended: nobody awaits them any more)."""
        for future in self._fetched.values():
            future.cancel()


def _retrieve(future: asyncio.Future[Fetched]) -> None:
    """Mark a fetch's failure as seen (each awaiting attempt reports it on its own)."""
    if not future.cancelled():
        future.exception()


def _refused(path: str, what: str) -> LlmeshError:
    return LlmeshError(
        Reason.INVALID_REQUEST, f"{path}: {what}", violations=(FieldViolation(path, what),)
    )
