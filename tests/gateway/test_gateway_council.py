"""``POST /api/v1/council/stream`` over the real mesh: SSE per branch item, errors as JSON."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson

from tests.support.mesh import Mesh

URL = "/api/v1/council/stream"


def parse_sse(raw: str) -> list[tuple[str | None, Any]]:
    """(event name, decoded data) pairs of a Server-Sent Events body."""
    events = []
    for block in raw.split("\n\n"):
        if not block.strip():
            continue
        name = None
        data = []
        for line in block.split("\n"):
            key, _, value = line.partition(": ")
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)
        events.append((name, orjson.loads("\n".join(data))))
    return events


def body(text: str, members: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "input": {"messages": [{"role": "ROLE_USER", "content": text}]},
        "members": members,
        **extra,
    }


async def test_council_streams_every_branch_as_sse(mesh: Mesh) -> None:
    await asyncio.to_thread(mesh.set_fault, "gw-council-busy", "overloaded")
    request = body(
        "name a prime number",
        [
            {"model": "emulator/echo", "persona": "You are a mathematician."},
            {"name": "mini", "model": "openai/gpt-4o-mini"},
            {"name": "busy", "model": "anthropic/gw-council-busy"},
        ],
        judge={"model": "fast", "instructions": "Pick one."},
    )
    async with httpx.AsyncClient(base_url=mesh.gateway_url, timeout=30) as http:
        r = await http.post(URL, json=request)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(r.text)
    assert all(name is None for name, _ in events)
    items = [data for _, data in events]
    assert {i["branch"] for i in items} == {"branch-0", "mini", "busy", "judge"}
    last = {i["branch"]: i for i in items}
    assert last["busy"]["error"]["reason"] == "ERROR_REASON_OVERLOADED"
    for name in ("branch-0", "mini", "judge"):
        assert last[name]["event"]["finish"]["reason"] == "FINISH_REASON_STOP"
    text: dict[str, str] = {}
    for i in items:
        delta = i.get("event", {}).get("textDelta")
        if delta:
            text[i["branch"]] = text.get(i["branch"], "") + delta["text"]
    assert text["branch-0"] == text["mini"] == "name a prime number"
    assert '<answer branch="mini">\nname a prime number\n</answer>' in text["judge"]
    assert text["judge"].endswith("Pick one.")
    judge_at = next(n for n, i in enumerate(items) if i["branch"] == "judge")
    assert all(i["branch"] == "judge" for i in items[judge_at:])


async def test_council_validation_error_is_a_400_json(mesh: Mesh) -> None:
    request = body("hi", [{"model": "emulator/echo"}, {"name": "judge", "model": ""}])
    async with httpx.AsyncClient(base_url=mesh.gateway_url, timeout=30) as http:
        r = await http.post(URL, json=request)
        missing = await http.post(URL, json={"members": [{"model": "emulator/echo"}]})
        unknown = await http.post(URL, json=body("hi", [{"model": "nowhere/x"}]))
        bad_json = await http.post(URL, json={"members": "nope"})
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert error["reason"] == "INVALID_REQUEST" and error["status"] == "INVALID_ARGUMENT"
    assert [v["field"] for v in error["fieldViolations"]] == [
        "members[1].model",
        "members[1].name",
    ]
    assert missing.status_code == 400
    assert [v["field"] for v in missing.json()["error"]["fieldViolations"]] == ["input"]
    assert unknown.status_code == 404
    assert unknown.json()["error"]["reason"] == "MODEL_NOT_FOUND"
    assert unknown.json()["error"]["metadata"]["field"] == "members[0].model"
    assert bad_json.status_code == 400


async def test_fail_fast_after_the_first_item_is_an_error_event(mesh: Mesh) -> None:
    await asyncio.to_thread(mesh.set_fault, "gw-council-ff", "overloaded")
    request = body(
        "hello",
        [{"model": "emulator/echo"}, {"name": "busy", "model": "anthropic/gw-council-ff"}],
        failFast=True,
    )
    async with httpx.AsyncClient(base_url=mesh.gateway_url, timeout=30) as http:
        r = await http.post(URL, json=request)
    assert r.status_code == 200
    events = parse_sse(r.text)
    name, data = events[-1]
    assert name == "error"
    assert data["error"]["reason"] == "OVERLOADED" and data["error"]["code"] == 503
    name, data = events[-2]  # the branch's own terminal item comes before the status
    assert name is None and data["branch"] == "busy"
    assert data["error"]["reason"] == "ERROR_REASON_OVERLOADED" and data["error"]["message"]


async def test_client_disconnect_cancels_every_branch(mesh: Mesh) -> None:
    model = "gw-council-stall"
    await asyncio.to_thread(mesh.set_fault, model, "stall", after=1)

    async def disconnects() -> int:
        stats = await asyncio.to_thread(mesh.stats)
        return int(stats.get("by_model", {}).get(model, {}).get("disconnects", 0))

    before = await disconnects()
    request = body(
        "a b c d",
        [{"name": "x", "model": f"openai/{model}"}, {"name": "y", "model": f"anthropic/{model}"}],
    )
    async with (
        httpx.AsyncClient(base_url=mesh.gateway_url, timeout=30) as http,
        http.stream("POST", URL, json=request) as r,
    ):
        assert r.status_code == 200
        deltas: set[str] = set()
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                item = orjson.loads(line.removeprefix("data: "))
                if "textDelta" in item.get("event", {}):
                    deltas.add(item["branch"])
            if deltas == {"x", "y"}:
                break
    loop = asyncio.get_running_loop()
    started = loop.time()
    while await disconnects() < before + 2:
        assert loop.time() - started < 5, "the upstream streams outlived the client"
        await asyncio.sleep(0.02)
