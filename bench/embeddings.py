"""``python -m bench --embeddings``: the local embedding model's throughput and memory.

Texts per second of the ``local`` provider's model called directly with 1 text and with 32
texts per model call, then through the provider's client with 32 concurrent one-text calls
(which its micro-batcher gathers into shared model calls); and the process's resident
memory before and after the model loads. Runs in this process, on the CPU, offline.

Then the remote path (`bench.embeddings_remote`): batches of short texts straight to an
upstream's ``/v1/embeddings`` against the same calls through llmesh's ``Embed`` RPC and its
gateway, in a second table.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.report import write_json
from bench.system import Pinning, machine_info, rss_mib

MODEL = "wordllama-l2-supercat"
CONCURRENCY = 32

_TEXT = (
    "the service routes each request to a model and records what it used while "
    "retries budgets and breakers keep slow providers from hurting everyone else "
    "embeddings turn short texts into vectors for search ranking and clustering"
)
_WORDS = _TEXT.split()


def texts(count: int) -> list[str]:
    """`count` different sentences of 8 to 23 words, the same on every run."""
    return [
        " ".join(_WORDS[(i * 7 + j) % len(_WORDS)] for j in range(8 + i % 16)) for i in range(count)
    ]


def _rate(run: Callable[[], int], seconds: float) -> float:
    """Texts per second of `run` (which returns how many texts it embedded), over `seconds`."""
    done, t0 = 0, time.perf_counter()
    while True:
        done += run()
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return done / elapsed


async def _concurrent_rate(client: Any, corpus: Sequence[str], seconds: float) -> float:
    from llmesh.services.core.embeddings import EmbeddingRequest

    done = 0
    stop = time.perf_counter() + seconds

    async def caller(i: int) -> None:
        nonlocal done
        n = i
        while time.perf_counter() < stop:
            await client.embed(MODEL, EmbeddingRequest((corpus[n % len(corpus)],)), timeout=None)
            done += 1
            n += CONCURRENCY

    t0 = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(CONCURRENCY)))
    return done / (time.perf_counter() - t0)


async def run_embeddings(
    seconds: float,
    out: Path,
    log: Callable[[str], None],
    *,
    rounds: int = 3,
    upstream: str = "auto",
    pinning: Pinning | None = None,
) -> tuple[str, Path]:
    """Measure locally, then remotely (`rounds` rounds over `upstream`, unless `rounds` is 0);
    returns the markdown tables and the JSON path."""
    from bench.embeddings_remote import run_remote
    from llmesh.services.common.config import ProviderConfig, load_config, resolve_provider
    from llmesh.services.orchestrator.providers.embeddings_local import LocalEmbeddings
    from llmesh.services.orchestrator.providers.local_model import (
        LOCAL_MODELS,
        StaticEmbeddingModel,
    )

    pid = os.getpid()
    rss_before = rss_mib(pid)
    log(f"loading {MODEL}")
    t0 = time.perf_counter()
    model = StaticEmbeddingModel.load(LOCAL_MODELS[MODEL])
    load_ms = (time.perf_counter() - t0) * 1000
    rss_loaded = rss_mib(pid)
    corpus = texts(1024)
    cursor = iter(range(1 << 62))

    def one() -> int:
        model.embed([corpus[next(cursor) % len(corpus)]])
        return 1

    def batch() -> int:
        start = next(cursor) * CONCURRENCY % len(corpus)
        model.embed(corpus[start : start + CONCURRENCY])
        return CONCURRENCY

    log("batch 1")
    batch_1 = _rate(one, seconds)
    log(f"batch {CONCURRENCY}")
    batch_n = _rate(batch, seconds)
    cfg = ProviderConfig("local", "local", models=(MODEL,))
    client = LocalEmbeddings(resolve_provider(cfg, load_config(None, env={}).emulator, {}))
    try:
        log(f"{CONCURRENCY} concurrent one-text calls through the client")
        await client.embed(MODEL, _request("warm"), timeout=None)
        calls_before = client.batcher(MODEL).model_calls
        concurrent = await _concurrent_rate(client, corpus, seconds)
        calls = client.batcher(MODEL).model_calls - calls_before
    finally:
        await client.aclose()
    rss_after = rss_mib(pid)
    tokens = sum(model.embed(corpus)[1]) / len(corpus)
    results = {
        "model": MODEL,
        "dimensions": model.dimensions,
        "mean_tokens_per_text": round(tokens, 1),
        "load_ms": round(load_ms, 1),
        "texts_per_s_batch_1": round(batch_1),
        f"texts_per_s_batch_{CONCURRENCY}": round(batch_n),
        f"texts_per_s_client_{CONCURRENCY}_concurrent": round(concurrent),
        "client_model_calls": calls,
        "rss_mib_before_load": _mib(rss_before),
        "rss_mib_after_load": _mib(rss_loaded),
        "rss_mib_after_run": _mib(rss_after),
    }
    rows = "\n".join(f"| {key} | {value} |" for key, value in results.items())
    table = f"| measure | value |\n|---|---|\n{rows}"
    remote: dict[str, Any] | None = None
    if rounds > 0:
        remote, remote_table = await run_remote(
            seconds, rounds, upstream, pinning or Pinning.detect(), log
        )
        table += "\n\n" + remote_table
    path = write_json(
        out,
        {
            "meta": {"machine": machine_info(), "seconds": seconds},
            "results": results,
            "remote": remote,
            "table": table,
        },
        prefix="embeddings-",
    )
    return table, path


def _mib(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _request(text: str) -> Any:
    from llmesh.services.core.embeddings import EmbeddingRequest

    return EmbeddingRequest((text,))
