"""Replicas leaving the fleet: SIGTERM drains one (its streams finish, new calls go to the
others), kill -9 cuts one (its streams end with a precise error, the others carry on)."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
from dataclasses import dataclass, field

import asyncpg
import httpx

from tests.support.replicas import Fleet


@dataclass
class Stream:
    """One streamed /v1 call as its client saw it."""

    request_id: str = ""
    text: str = ""
    done: bool = False
    error: dict[str, object] | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)


async def _stream(
    client: httpx.AsyncClient, url: str, key: str, model: str, seen: Stream
) -> Stream:
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "a b c d"}]}
    headers = {"authorization": f"Bearer {key}"}
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers) as r:
        assert r.status_code == 200, await r.aread()
        seen.request_id = r.headers["x-request-id"]
        async for line in r.aiter_lines():
            if not line.startswith("data: "):
                continue
            data = line.removeprefix("data: ")
            if data == "[DONE]":
                seen.done = True
                continue
            event = json.loads(data)
            if "error" in event:
                seen.error = event["error"]
                continue
            for choice in event.get("choices", ()):
                seen.text += choice.get("delta", {}).get("content") or ""
            if seen.text:  # the first piece arrived (a role-only chunk may come before)
                seen.started.set()
    return seen


async def _calls(fleet: Fleet, client: httpx.AsyncClient, key: str, n: int) -> list[httpx.Response]:
    urls = itertools.cycle(fleet.gateway_urls)
    body = {"model": "emulator/echo", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {key}"}
    replies = await asyncio.gather(
        *(
            client.post(f"{next(urls)}/v1/chat/completions", json=body, headers=headers)
            for _ in range(n)
        )
    )
    return list(replies)


async def _ledger_ids(fleet: Fleet, tenant: str) -> set[str]:
    await asyncio.sleep(0.5)  # several flush intervals
    conn = await asyncpg.connect(fleet.postgres_url)
    try:
        rows = await conn.fetch(
            f'SELECT request_id FROM "{fleet.schema}".usage_records WHERE tenant = $1',
            fleet.tenant(tenant),
        )
    finally:
        await conn.close()
    return {r["request_id"] for r in rows}


async def _ledger_statuses(fleet: Fleet, tenant: str) -> dict[str, str]:
    conn = await asyncpg.connect(fleet.postgres_url)
    try:
        rows = await conn.fetch(
            f'SELECT request_id, status FROM "{fleet.schema}".usage_records WHERE tenant = $1',
            fleet.tenant(tenant),
        )
    finally:
        await conn.close()
    return {r["request_id"]: r["status"] for r in rows}


async def _streams(
    fleet: Fleet, client: httpx.AsyncClient, key: str, model: str, n: int
) -> list[asyncio.Task[Stream]]:
    """`n` streams over the gateways in turn (the round robin of each gateway puts one on
    every replica), returned once every one has sent its first piece; the emulator then
    stalls them."""
    urls = itertools.cycle(fleet.gateway_urls)
    seen = [Stream() for _ in range(n)]
    tasks = [asyncio.ensure_future(_stream(client, next(urls), key, model, s)) for s in seen]
    waits = [asyncio.ensure_future(s.started.wait()) for s in seen]
    await asyncio.wait([*waits], timeout=20)
    for w in waits:
        w.cancel()
    assert all(s.started.is_set() for s in seen), [t for t in tasks if t.done()]
    return tasks


async def test_sigterm_drains_a_replica_while_new_calls_go_to_the_others(fleet: Fleet) -> None:
    model = f"slow-{fleet.run}"
    fleet.set_fault(model, "stall", after=1, stall_ms=1500)
    key = fleet.keys["drain"]
    async with httpx.AsyncClient(timeout=30) as client:
        tasks = await _streams(fleet, client, key, f"emulator/{model}", 6)
        fleet.signal("orch0", signal.SIGTERM)
        replies = await _calls(fleet, client, key, 12)  # during the drain
        streams = await asyncio.gather(*tasks)
    assert [r.status_code for r in replies] == [200] * 12
    for s in streams:  # the drained replica's streams finished too
        assert (s.done, s.error, s.text) == (True, None, "a b c d"), s
    assert await asyncio.to_thread(fleet.procs["orch0"].wait, 20) == 0
    ids = await _ledger_ids(fleet, "drain")
    assert {s.request_id for s in streams} <= ids  # flushed before the replica exited


async def test_kill_9_ends_its_streams_with_a_precise_error_and_the_others_carry_on(
    fleet: Fleet,
) -> None:
    model = f"hang-{fleet.run}"
    # long enough that no stream ends before the kill on a loaded machine
    fleet.set_fault(model, "stall", after=1, stall_ms=4000)
    key = fleet.keys["kill"]
    async with httpx.AsyncClient(timeout=30) as client:
        tasks = await _streams(fleet, client, key, f"emulator/{model}", 6)
        await asyncio.sleep(0.5)  # a few flush intervals: the calls in flight are recorded
        fleet.signal("orch1", signal.SIGKILL)
        await asyncio.to_thread(fleet.procs["orch1"].wait, 10)
        for gateway in range(len(fleet.gateway_urls)):  # each gateway saw its connection drop:
            await asyncio.wait(
                tasks[gateway :: len(fleet.gateway_urls)], return_when="FIRST_COMPLETED"
            )
        # calls sent from now on are new: the survivors take every one (calls a gateway had
        # sent to the replica in the instant it died are in flight like the streams)
        replies = await _calls(fleet, client, key, 12)
        streams = await asyncio.gather(*tasks)
    assert [r.status_code for r in replies] == [200] * 12
    finished = [s for s in streams if s.done and s.error is None]
    broken = [s for s in streams if s.error is not None]
    assert broken and len(finished) + len(broken) == len(streams), streams
    for s in finished:
        assert s.text == "a b c d"
    for s in broken:  # an error event naming the cause, no [DONE]: not a silent truncation
        assert (s.done, s.text, s.error["code"]) == (False, "a", "service_unreachable"), s
        assert "cannot reach the llmesh orchestrator" in str(s.error["message"])
    ids = await _ledger_ids(fleet, "kill")
    assert {s.request_id for s in finished} | {r.headers["x-request-id"] for r in replies} <= ids
    # what the killed replica had in flight reached the upstream: a surviving replica closes
    # it as interrupted at its next lease renewal (the dead pid is seen on this machine)
    cut = {s.request_id for s in broken}
    statuses = await _ledger_statuses(fleet, "kill")
    for _ in range(100):
        if cut <= statuses.keys():
            break
        await asyncio.sleep(0.1)
        statuses = await _ledger_statuses(fleet, "kill")
    assert {statuses.get(i) for i in cut} == {"interrupted"}
