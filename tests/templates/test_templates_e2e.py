"""Templates end to end: created over the gateway's JSON API, called through the gateway
(and the direct path) with the openai SDK, rendered by the processor, recorded in the
ledger with their version, and counted by the statistics (gRPC, JSON API and CLI).

The emulator's echo model replies with the last user message it received, so a reply shows
what the template rendered.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import httpx
import openai
import pytest
from google.protobuf import struct_pb2

from llmesh.services.ledger import open_store
from llmesh.services.templates.cli import templates_report
from llmesh.v1 import (
    chat_pb2,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    templates_pb2,
    templates_pb2_grpc,
)
from tests.support.mesh import Mesh

SUPPORT = {
    "template": {
        "name": "support",
        "description": "first",
        "variables": [
            {"name": "product", "required": True},
            {"name": "tone", "defaultValue": "friendly"},
        ],
        "system": "Answer in a {{ tone }} tone.",
        "messages": [
            {"role": "ROLE_USER", "content": "How do I reset {{ product }}?"},
        ],
        "parameters": {"temperature": 0.25},
    }
}


@pytest.fixture(scope="module")
def templates_mesh() -> Iterator[Mesh]:
    m = Mesh().start()
    yield m
    m.stop()


@pytest.fixture
async def http(templates_mesh: Mesh) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=templates_mesh.gateway_url, timeout=10) as client:
        yield client


def _sdk(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="sk-x", max_retries=0, timeout=10)


async def _created(http: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    r = await http.post("/api/v1/templates", json=body)
    assert r.status_code == 200, r.text
    return r.json()["template"]  # type: ignore[no-any-return]


async def _stats(http: httpx.AsyncClient, name: str, calls: int) -> list[dict[str, Any]]:
    """The template's statistics once the ledger holds `calls` calls of it (bounded poll)."""
    for _ in range(200):
        r = await http.get(f"/api/v1/templates/{name}/stats")
        assert r.status_code == 200, r.text
        versions = r.json().get("versions", [])
        if sum(int(v.get("calls", 0)) for v in versions) >= calls:
            return versions  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise AssertionError(f"the ledger never counted {calls} calls of {name}: {versions}")


async def test_a_template_call_through_the_gateway_is_rendered_recorded_and_counted(
    templates_mesh: Mesh, http: httpx.AsyncClient, tmp_path: Any
) -> None:
    created = await _created(http, SUPPORT)
    assert created["version"] == 1
    sdk = _sdk(templates_mesh.gateway_url)
    try:
        raw = await sdk.chat.completions.with_raw_response.create(
            model="emulator/echo",
            messages=[],
            extra_body={"template": "support", "template_variables": {"product": "the router"}},
        )
        reply = raw.parse()
        assert reply.choices[0].message.content == "How do I reset the router?"
        request_id = raw.headers["x-request-id"]
        stream = await sdk.chat.completions.create(
            model="emulator/echo",
            messages=[{"role": "user", "content": "And the modem?"}],
            stream=True,
            extra_body={"template": "support@1", "template_variables": {"product": "x"}},
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "And the modem?"  # the caller's messages follow the template's
    finally:
        await sdk.close()
    [v1] = await _stats(http, "support", 2)
    assert (v1["version"], int(v1["calls"])) == (1, 2)
    assert "errors" not in v1  # zero
    ledger = open_store(templates_mesh.config.database_url)
    try:
        row = await ledger.get(request_id)
    finally:
        await ledger.aclose()
    assert row is not None
    assert (row.template, row.template_version) == ("support", 1)
    # the CLI reads the same ledger
    out = await templates_report(templates_mesh.config.database_url, ["stats", "support"])
    assert out.splitlines()[1].split()[:3] == ["1", "2", "0"]


async def test_weights_pick_versions_and_the_trail_names_the_version(
    templates_mesh: Mesh, http: httpx.AsyncClient
) -> None:
    body = {"template": {**SUPPORT["template"], "name": "ab"}}
    await _created(http, body)
    second = {
        "template": {**body["template"], "messages": [{"role": 2, "content": "v2 {{ product }}"}]}
    }
    assert (await _created(http, second))["version"] == 2
    r = await http.put(
        "/api/v1/templates/ab/weights", json={"weights": [{"version": 2, "weight": 1}]}
    )
    assert r.status_code == 200, r.text
    got = await http.get("/api/v1/templates/ab")
    assert got.json()["versions"] == [1, 2]
    assert got.json()["weights"] == [{"version": 2, "weight": 1.0}]
    variables = struct_pb2.Struct()
    variables.update({"product": "p"})
    request = orchestrator_pb2.StreamChatRequest(
        input=chat_pb2.ChatInput(model="emulator/echo", template="ab", template_variables=variables)
    )
    async with grpc.aio.insecure_channel(templates_mesh.orchestrator_address) as ch:
        call = orchestrator_pb2_grpc.OrchestratorServiceStub(ch).StreamChat(request, timeout=10)
        text = "".join([e.text_delta.text async for e in call if e.HasField("text_delta")])
        trailers = dict(await call.trailing_metadata())
        stats = await templates_pb2_grpc.TemplateServiceStub(ch).GetTemplateStats(
            templates_pb2.GetTemplateStatsRequest(name="ab"), timeout=10
        )
    assert text == "v2 p"
    assert trailers["llmesh-template"] == "ab@2"
    assert '"template: ab@2 (' in trailers["llmesh-steps"]
    assert stats.name == "ab"


async def test_errors_are_clear(templates_mesh: Mesh, http: httpx.AsyncClient) -> None:
    await _created(http, {"template": {**SUPPORT["template"], "name": "strict"}})
    for url in (templates_mesh.gateway_url, templates_mesh.direct_url):
        sdk = _sdk(url)
        try:
            with pytest.raises(openai.NotFoundError) as missing:
                await sdk.chat.completions.create(
                    model="emulator/echo", messages=[], extra_body={"template": "nothing"}
                )
            assert "nothing" in str(missing.value)
            with pytest.raises(openai.NotFoundError):
                await sdk.chat.completions.create(
                    model="emulator/echo", messages=[], extra_body={"template": "strict@7"}
                )
            with pytest.raises(openai.BadRequestError) as bad:
                await sdk.chat.completions.create(
                    model="emulator/echo",
                    messages=[],
                    extra_body={"template": "strict", "template_variables": {"typo": 1}},
                )
            assert "template_variables.typo" in str(bad.value)
            assert "template_variables.product" in str(bad.value)
            with pytest.raises(openai.BadRequestError):
                await sdk.chat.completions.create(model="emulator/echo", messages=[])
        finally:
            await sdk.close()
    bad_text = {"template": {**SUPPORT["template"], "name": "broken", "system": "{{ nope }}"}}
    r = await http.post("/api/v1/templates", json=bad_text)
    assert r.status_code == 400
    assert "nope" in r.text
    r = await http.get("/api/v1/templates/nothing")
    assert r.status_code == 404
    assert r.json()["error"]["reason"] == "TEMPLATE_NOT_FOUND"
    r = await http.put(
        "/api/v1/templates/strict/weights", json={"weights": [{"version": 5, "weight": 1}]}
    )
    assert r.status_code == 400
    for query in ("version=x", "version=0"):
        assert (await http.get(f"/api/v1/templates/strict?{query}")).status_code == 400
    assert (await http.get("/api/v1/templates/strict?version=1")).status_code == 200
    assert (await http.get("/api/v1/templates/strict/stats?since=soon")).status_code == 400
    window = "since=2000-01-01T00:00:00Z&until=2001-01-01T00:00:00Z"
    empty = await http.get(f"/api/v1/templates/strict/stats?{window}")
    assert empty.status_code == 200
    assert empty.json() == {"name": "strict"}
    for url in (templates_mesh.gateway_url, templates_mesh.direct_url):
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            listing = await client.get("/api/v1/templates")
        assert "strict" in [t["name"] for t in listing.json()["templates"]]
