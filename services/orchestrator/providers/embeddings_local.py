"""The ``local`` provider kind: embeddings from a model run in-process on the CPU.

Requests are micro-batched: a call's texts join a queue, and one worker task takes every
call that arrives within ``batch_wait`` seconds of the first (up to ``max_batch`` texts) and
embeds them in one model call, run on a thread of its own so the event loop is never
blocked. The model is loaded on that thread at the first call. Usage is the model
tokenizer's count of each text's tokens; the price table lists ``local/*`` as free.
Imported only when a ``local`` provider is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from llmesh.services.common.config import ResolvedProvider
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.embeddings import EmbeddingRequest
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.providers.embeddings import EmbeddingResult
from llmesh.services.orchestrator.providers.local_model import (
    LOCAL_MODELS,
    LocalModelSpec,
    StaticEmbeddingModel,
)

__all__ = ["LocalEmbeddings", "MicroBatcher"]

Vectors = npt.NDArray[np.float32]
EmbedFn = Callable[[Sequence[str], int | None], tuple[Vectors, list[int]]]
"""One model call: texts and the wanted length in, unit vectors and token counts out."""


@dataclass(slots=True)
class _Job:
    texts: tuple[str, ...]
    dimensions: int | None
    done: asyncio.Future[tuple[Vectors, list[int]]] = field(repr=False)


class MicroBatcher:
    """Gathers concurrent calls into one model call each `max_wait` seconds at most.

    Calls asking for different `dimensions` are never mixed in a batch. A call with more
    texts than `max_batch` is embedded on its own, in one model call.
    """

    def __init__(
        self,
        run: Callable[[], EmbedFn],
        *,
        max_batch: int,
        max_wait: float,
    ) -> None:
        """`run` builds the model call; it is called once, on the worker thread."""
        self._load = run
        self._run: EmbedFn | None = None
        self._max_batch = max_batch
        self._max_wait = max_wait
        self._queue: asyncio.Queue[_Job] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmesh-embed")
        self.model_calls = 0
        """Model calls made so far (each a batch of one call's texts or more)."""

    async def embed(
        self, texts: tuple[str, ...], dimensions: int | None
    ) -> tuple[Vectors, list[int]]:
        """The vectors and token counts of `texts`, from the batch they join."""
        loop = asyncio.get_running_loop()
        if self._queue is None or self._worker is None or self._worker.get_loop() is not loop:
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._work(self._queue), name="llmesh-embed")
        job = _Job(texts, dimensions, loop.create_future())
        self._queue.put_nowait(job)
        return await job.done

    async def _work(self, queue: asyncio.Queue[_Job]) -> None:
        loop = asyncio.get_running_loop()
        held: _Job | None = None
        while True:
            first = held or await queue.get()
            held = None
            batch, size = [first], len(first.texts)
            deadline = loop.time() + self._max_wait
            while size < self._max_batch:
                try:
                    job = queue.get_nowait()  # those already waiting join without a wait
                except asyncio.QueueEmpty:
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        job = await asyncio.wait_for(queue.get(), left)
                    except TimeoutError:
                        break
                if job.dimensions != first.dimensions or size + len(job.texts) > self._max_batch:
                    held = job  # starts the next batch
                    break
                batch.append(job)
                size += len(job.texts)
            await self._run_batch(loop, [j for j in batch if not j.done.done()])

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[_Job]) -> None:
        if not batch:
            return
        texts = [t for job in batch for t in job.texts]
        try:
            vectors, counts = await loop.run_in_executor(
                self._thread, self._call, texts, batch[0].dimensions
            )
        except Exception as exc:
            for job in batch:
                if not job.done.done():
                    job.done.set_exception(exc)
            return
        start = 0
        for job in batch:
            end = start + len(job.texts)
            if not job.done.done():
                job.done.set_result((vectors[start:end], counts[start:end]))
            start = end

    def _call(self, texts: Sequence[str], dimensions: int | None) -> tuple[Vectors, list[int]]:
        if self._run is None:
            self._run = self._load()
        self.model_calls += 1
        return self._run(texts, dimensions)

    async def aclose(self) -> None:
        """Stop the worker (waiting calls are cancelled) and the model's thread."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._queue is not None:
            while not self._queue.empty():
                self._queue.get_nowait().done.cancel()
        self._thread.shutdown(wait=False, cancel_futures=True)


class LocalEmbeddings:
    """Embeds with the models of `local_model.LOCAL_MODELS`, micro-batched."""

    def __init__(self, resolved: ResolvedProvider) -> None:
        cfg = resolved.config
        self.name = cfg.name
        self._max_batch = cfg.max_batch
        self._max_wait = cfg.batch_wait
        self._batchers: dict[str, MicroBatcher] = {}

    def batcher(self, model: str) -> MicroBatcher:
        """The model's batcher (made at its first call); MODEL_NOT_FOUND for another name."""
        found = self._batchers.get(model)
        if found is None:
            spec = LOCAL_MODELS.get(model)
            if spec is None:
                raise LlmeshError(
                    Reason.MODEL_NOT_FOUND,
                    f"provider {self.name!r} has no local model {model!r}; "
                    f"known: {sorted(LOCAL_MODELS)}",
                )
            found = MicroBatcher(_loader(spec), max_batch=self._max_batch, max_wait=self._max_wait)
            self._batchers[model] = found
        return found

    async def embed(
        self, model: str, request: EmbeddingRequest, *, timeout: float | None
    ) -> EmbeddingResult:
        """The vectors of `request.inputs`; the tokenizer's token count as usage."""
        spec = LOCAL_MODELS.get(model)
        dims = request.dimensions
        if spec is not None and dims is not None and not 0 < dims <= spec.dimensions:
            raise LlmeshError(
                Reason.INVALID_REQUEST,
                f"dimensions: {model} makes vectors of at most {spec.dimensions}, not {dims}",
            )
        batcher = self.batcher(model)
        if timeout is not None and timeout <= 0:
            raise LlmeshError(Reason.UPSTREAM_TIMEOUT, "no time left to run the model")
        try:
            async with asyncio.timeout(timeout):
                vectors, counts = await batcher.embed(request.inputs, dims)
        except TimeoutError:
            raise LlmeshError(Reason.UPSTREAM_TIMEOUT, "the local model ran out of time") from None
        except (OSError, ValueError, ImportError) as exc:  # the model's package is missing
            raise LlmeshError(
                Reason.PROVIDER_NOT_CONFIGURED, f"local model {model!r} cannot load: {exc}"
            ) from exc
        packed = np.ascontiguousarray(vectors, dtype="<f4")  # llmesh's form of a vector
        return EmbeddingResult(tuple(row.tobytes() for row in packed), Usage(sum(counts)))

    async def aclose(self) -> None:
        """Stop every model's worker."""
        for batcher in self._batchers.values():
            await batcher.aclose()


def _loader(spec: LocalModelSpec) -> Callable[[], EmbedFn]:
    def load() -> EmbedFn:
        return StaticEmbeddingModel.load(spec).embed

    return load
