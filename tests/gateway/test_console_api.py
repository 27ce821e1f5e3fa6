"""The console's endpoints against a fake orchestrator: the mesh stream's lifetime and
errors, and the query string of ``/api/v1/calls``."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest

from llmesh.gateway.console_api import recent_calls_request
from llmesh.services.common.errors import LlmeshError, Reason
from tests.gateway.fakes import FakeMesh


async def test_the_mesh_stream_ends_the_upstream_watch_when_the_client_goes_away(
    http: httpx.AsyncClient, fake_mesh: FakeMesh
) -> None:
    async with http.stream("POST", "/api/v1/mesh/stream", json={}) as r:
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                snapshot = orjson.loads(line[6:])
                assert snapshot["targets"] == [{"name": "fake/echo"}]
                break
    await asyncio.wait_for(fake_mesh.orchestrator.cancelled.wait(), 10)
    # a watch has no deadline of its own: it lasts as long as the console looks
    assert fake_mesh.orchestrator.calls[-1].time_remaining is None


async def test_the_mesh_stream_takes_a_deadline_only_when_asked(
    http: httpx.AsyncClient, fake_mesh: FakeMesh
) -> None:
    headers = {"x-llmesh-timeout": "30"}
    async with http.stream("POST", "/api/v1/mesh/stream", json={}, headers=headers) as r:
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                break
    remaining = fake_mesh.orchestrator.calls[-1].time_remaining
    assert remaining is not None and 0 < remaining <= 30


async def test_an_error_before_the_first_snapshot_is_an_http_error(
    http: httpx.AsyncClient,
) -> None:
    r = await http.post("/api/v1/mesh/stream", json={"tenant": "denied"})
    assert r.status_code == 403
    assert r.json()["error"]["reason"] == "PERMISSION_DENIED"


async def test_a_bad_mesh_stream_body_is_a_400(http: httpx.AsyncClient) -> None:
    r = await http.post("/api/v1/mesh/stream", json={"interval": "soon"})
    assert r.status_code == 400
    assert r.json()["error"]["reason"] == "INVALID_REQUEST"


def test_the_calls_query_becomes_a_request() -> None:
    request = recent_calls_request({"limit": "25", "tenant": "acme", "request_id": "req_1"})
    assert (request.limit, request.tenant, request.request_id) == (25, "acme", "req_1")
    assert recent_calls_request({}).limit == 0  # the orchestrator's default


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "ten"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "1e9"}, "limit"),
        ({"limit": "100001"}, "limit"),
        ({"key": "x"}, "key"),
    ],
)
def test_a_bad_calls_query_names_the_parameter(query: dict[str, str], field: str) -> None:
    with pytest.raises(LlmeshError) as info:
        recent_calls_request(query)
    assert info.value.reason is Reason.INVALID_REQUEST
    assert info.value.violations[0].field == field
