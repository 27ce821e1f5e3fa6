"""Stored responses through the official SDK against the running mesh: the tenant a response
is stored under is the one its ledger record names, and a response's input items list in
OpenAI's shape, page by page."""

from __future__ import annotations

import openai
import pytest

from tests.support.ledger import ledger_record
from tests.support.mesh import Mesh


def _client(mesh: Mesh, **headers: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{mesh.gateway_url}/v1",
        api_key="unused",
        max_retries=0,
        default_headers=headers or None,
    )


async def test_a_stored_response_and_its_ledger_record_name_one_tenant(mesh: Mesh) -> None:
    async with _client(mesh, **{"x-llmesh-tenant": "gamma"}) as gamma:
        raw = await gamma.responses.with_raw_response.create(model="emulator/echo", input="keep")
        made = raw.parse()
        assert (await gamma.responses.retrieve(made.id)).output_text == "keep"
    async with _client(mesh) as default:
        with pytest.raises(openai.NotFoundError):
            await default.responses.retrieve(made.id)
    record = await ledger_record(mesh.config.database_url, raw.headers["x-request-id"])
    assert record.tenant == "gamma"


async def test_chat_completions_are_recorded_under_the_tenant_header(mesh: Mesh) -> None:
    async with _client(mesh, **{"x-llmesh-tenant": "delta"}) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="emulator/echo", messages=[{"role": "user", "content": "hi"}]
        )
    record = await ledger_record(mesh.config.database_url, raw.headers["x-request-id"])
    assert record.tenant == "delta"


async def test_input_items_list_in_openai_shape(mesh: Mesh) -> None:
    items = [
        {"role": "developer", "content": "Be terse."},
        {"type": "message", "role": "user", "content": "first", "id": "msg_mine"},
        {"type": "message", "role": "assistant", "content": "ok"},
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "second"}],
        },
    ]
    async with _client(mesh) as client:
        made = await client.responses.create(model="emulator/echo", input=items)  # type: ignore[arg-type]
        listed = await client.responses.input_items.list(made.id, order="asc")
        assert [i.id for i in listed.data][1] == "msg_mine"
        assert [i.role for i in listed.data] == ["developer", "user", "assistant", "user"]  # type: ignore[union-attr]
        texts = [i.content[0].text for i in listed.data]  # type: ignore[union-attr]
        assert texts == ["Be terse.", "first", "ok", "second"]
        assert [i.content[0].type for i in listed.data] == [  # type: ignore[union-attr]
            "input_text",
            "input_text",
            "output_text",
            "input_text",
        ]
        assert listed.first_id == listed.data[0].id and listed.last_id == listed.data[-1].id
        assert listed.has_more is False
        again = await client.responses.input_items.list(made.id, order="asc")
        assert [i.id for i in again.data] == [i.id for i in listed.data]  # ids are stored

        newest = await client.responses.input_items.list(made.id, limit=3)
        assert [i.id for i in newest.data] == [i.id for i in reversed(listed.data)][:3]
        assert newest.has_more is True
        rest = await client.responses.input_items.list(made.id, limit=3, after=newest.last_id)  # type: ignore[arg-type]
        assert [i.id for i in rest.data] == [listed.data[0].id] and rest.has_more is False
        every = [i.id async for i in client.responses.input_items.list(made.id, limit=1)]
        assert every == [i.id for i in reversed(listed.data)]

        with pytest.raises(openai.BadRequestError) as bad:
            await client.responses.input_items.list(made.id, limit=0)
        assert bad.value.param == "limit"  # type: ignore[attr-defined]
        with pytest.raises(openai.NotFoundError):
            await client.responses.input_items.list("resp_unknown")
    async with _client(mesh, **{"x-llmesh-tenant": "other"}) as other:
        with pytest.raises(openai.NotFoundError):
            await other.responses.input_items.list(made.id)
