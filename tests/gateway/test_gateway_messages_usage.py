"""Usage on a streamed ``/v1/messages`` call: ``message_start`` shows the input count the
mesh knows (an Anthropic target's own, else the processor's count for the target model)
and ``message_delta`` the final usage, the same as the whole reply's and the ledger's."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.support.ledger import ledger_record
from tests.support.mesh import Mesh

BODY: dict[str, Any] = {
    "max_tokens": 64,
    "system": "be brief",
    "messages": [{"role": "user", "content": "hello there friend"}],
    "tools": [{"name": "lookup", "input_schema": {"type": "object"}}],
}


async def _stream(http: httpx.AsyncClient, body: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """(message_start usage, message_delta usage, request id) of a streamed call."""
    async with http.stream("POST", "/v1/messages", json={**body, "stream": True}) as r:
        text = (await r.aread()).decode()
        request_id = r.headers["x-request-id"]
    datas = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    (start,) = [d["message"]["usage"] for d in datas if d["type"] == "message_start"]
    (delta,) = [d["usage"] for d in datas if d["type"] == "message_delta"]
    return start, delta, {"id": request_id}


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-6"])
async def test_stream_usage_is_early_then_final(mesh: Mesh, model: str) -> None:
    body = {**BODY, "model": model}
    async with httpx.AsyncClient(base_url=mesh.gateway_url, timeout=20) as http:
        start, delta, rid = await _stream(http, body)
        whole = (await http.post("/v1/messages", json=body)).json()
        count = {k: v for k, v in body.items() if k != "max_tokens"}
        counted = (await http.post("/v1/messages/count_tokens", json=count)).json()
    assert delta == whole["usage"]  # final, and what a whole reply reports
    record = await ledger_record(mesh.config.database_url, rid["id"])
    assert (record.input_tokens, record.output_tokens) == (
        delta["input_tokens"],
        delta["output_tokens"],
    )
    assert start["output_tokens"] <= delta["output_tokens"]
    if model.startswith("anthropic/"):
        assert start["input_tokens"] == delta["input_tokens"]  # the target's own, reported first
    else:
        # an OpenAI-style target reports usage only at the end: the processor's count
        assert start["input_tokens"] == counted["input_tokens"] > 0
