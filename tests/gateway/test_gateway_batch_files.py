"""``GET /v1/files`` and ``DELETE /v1/files/{id}`` through the official openai SDK against
the gateway and a real orchestrator: each tenant lists and deletes only its own files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.gateway.test_gateway_batches_e2e import BatchMesh, _batch_mesh, _finished, _line, _output
from tests.support.mesh import Mesh

pytestmark = pytest.mark.parametrize("mesh", ["gateway"], indirect=True)


@pytest.fixture
async def batch_mesh(mesh: Mesh, tmp_path: Path) -> AsyncIterator[BatchMesh]:
    async with _batch_mesh(mesh, tmp_path) as running:
        yield running


def _content(text: str) -> bytes:
    body = {"model": "emulator/echo", "messages": [{"role": "user", "content": text}]}
    return _line("a", "/v1/chat/completions", body)


async def test_list_pages_newest_first_by_tenant(batch_mesh: BatchMesh) -> None:
    acme, globex = batch_mesh.openai("acme"), batch_mesh.openai("globex")
    made = [
        (await acme.files.create(file=(f"f{i}.jsonl", _content(str(i))), purpose="batch")).id
        for i in range(5)
    ]
    theirs = await globex.files.create(file=("g.jsonl", _content("g")), purpose="batch")
    listed = [f async for f in acme.files.list()]  # the SDK walks every page
    assert [f.id for f in listed] == made[::-1]
    assert {f.purpose for f in listed} == {"batch"}
    assert listed[0].filename == "f4.jsonl" and listed[0].bytes > 0
    page = await acme.files.list(limit=2)
    assert [f.id for f in page.data] == [made[4], made[3]]
    assert page.has_more is True
    rest = await acme.files.list(limit=10, after=made[3])
    assert [f.id for f in rest.data] == [made[2], made[1], made[0]]
    assert rest.has_more is False
    assert [f.id async for f in globex.files.list()] == [theirs.id]
    assert [f.id async for f in acme.files.list(purpose="fine-tune")] == []
    with pytest.raises(openai.BadRequestError):
        await acme.files.list(limit=0)
    with pytest.raises(openai.BadRequestError):
        await acme.files.list(order="asc")


async def test_delete_a_file_leaves_its_batches_whole(batch_mesh: BatchMesh) -> None:
    acme, globex = batch_mesh.openai("acme"), batch_mesh.openai("globex")
    file = await acme.files.create(file=("in.jsonl", _content("kept")), purpose="batch")
    batch = await acme.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    with pytest.raises(openai.NotFoundError):
        await globex.files.delete(file.id)  # another tenant's: as if it did not exist
    deleted = await acme.files.delete(file.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (file.id, "file", True)
    with pytest.raises(openai.NotFoundError):
        await acme.files.retrieve(file.id)
    with pytest.raises(openai.NotFoundError):
        await acme.files.delete(file.id)
    assert file.id not in [f.id async for f in acme.files.list()]
    done = await _finished(acme, batch.id)
    assert done.status == "completed"
    out = await _output(acme, done.output_file_id)
    assert "kept" in out["a"]["response"]["body"]["choices"][0]["message"]["content"]
    with pytest.raises(openai.BadRequestError) as refused:
        await acme.files.delete(done.output_file_id)
    assert "results" in refused.value.message


async def test_the_direct_http_path_answers_the_file_routes_with_501(mesh: Mesh) -> None:
    async with httpx.AsyncClient(base_url=mesh.direct_url, timeout=10) as http:
        listed = await http.get("/v1/files")
        deleted = await http.delete("/v1/files/file-x")
    assert (listed.status_code, deleted.status_code) == (501, 501)
