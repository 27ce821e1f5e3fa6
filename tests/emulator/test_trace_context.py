"""The emulator keeps the W3C trace context headers requests arrived with."""

from __future__ import annotations

import httpx
import openai

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_requests_with_a_traceparent_are_kept_until_reset(
    emulator: str, oai: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    await oai.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "untraced"}]
    )
    await oai.chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": "traced"}],
        extra_headers={"traceparent": TRACEPARENT, "baggage": "tenant=acme"},
    )
    await oai.embeddings.create(
        model="text-embedding-3-small",
        input="x",
        extra_headers={"traceparent": TRACEPARENT, "tracestate": "vendor=1"},
    )
    seen = (await http.get(f"{emulator}/emulator/trace-context")).json()
    assert seen == [
        {
            "path": "/v1/chat/completions",
            "model": "echo",
            "traceparent": TRACEPARENT,
            "baggage": "tenant=acme",
        },
        {
            "path": "/v1/embeddings",
            "model": "text-embedding-3-small",
            "traceparent": TRACEPARENT,
            "tracestate": "vendor=1",
        },
    ]
    await http.post(f"{emulator}/emulator/reset")
    assert (await http.get(f"{emulator}/emulator/trace-context")).json() == []
