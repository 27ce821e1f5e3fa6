"""Anthropic's Message Batches: ``/v1/messages/batches`` create, retrieve, list, cancel,
results and delete.

``POST /v1/messages/batches`` takes ``{"requests": [{"custom_id", "params"}]}`` (ids of 1 to
64 letters, digits, ``-`` or ``_``, unique); each ``params`` is a Messages request, checked
when the item runs (an invalid one is an ``errored`` result, as at Anthropic). The batch is
``in_progress``, ``canceling`` once cancelled, ``ended`` when every request has a result;
``request_counts`` splits its requests into ``processing``, ``succeeded``, ``errored``,
``canceled`` and ``expired``. Once ended, ``results_url`` serves the results as JSONL:
``{"custom_id", "result": {"type": "succeeded", "message"} | {"type": "errored", "error"} |
{"type": "canceled"} | {"type": "expired"}}``. Times are RFC 3339 strings.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from llmesh.services.emulator import anthropic_wire
from llmesh.services.emulator.anthropic_api import JSON, headers
from llmesh.services.emulator.batch_items import answer_anthropic
from llmesh.services.emulator.batches import ItemAnswer, Job, Outcome, Phase
from llmesh.services.emulator.errors import ApiError, new_request_id
from llmesh.services.emulator.state import STATE

__all__ = ["add_routes"]

MAX_REQUESTS = 100_000
"""The most requests one batch may hold (Anthropic's limit)."""

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_KIND = "anthropic"
_PASSED_HEADERS = ("anthropic-beta",)
"""Headers of the batch's creation that apply to every item."""


def _rfc3339(when: float | None) -> str | None:
    if when is None:
        return None
    return datetime.fromtimestamp(when, UTC).isoformat().replace("+00:00", "Z")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(data), headers=headers(new_request_id(), JSON)
    )


def _error(err: ApiError) -> web.Response:
    request_id = new_request_id()
    return web.Response(
        status=err.status,
        body=anthropic_wire.error_body(err, request_id),
        headers=headers(request_id, JSON),
    )


def batch_object(job: Job, origin: str) -> dict[str, Any]:
    """The ``MessageBatch`` object of a job."""
    ended = job.phase is Phase.ENDED
    if ended:
        status = "ended"
    elif job.cancel_requested_at is not None:
        status = "canceling"
    else:
        status = "in_progress"
    return {
        "id": job.id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": {
            "processing": job.total - len(job.results),
            "succeeded": job.count(Outcome.ANSWERED, ok=True),
            "errored": job.count(Outcome.ANSWERED, ok=False),
            "canceled": job.count(Outcome.CANCELLED),
            "expired": job.count(Outcome.EXPIRED),
        },
        "ended_at": _rfc3339(job.ended_at),
        "created_at": _rfc3339(job.created_at),
        "expires_at": _rfc3339(job.expires_at),
        "archived_at": None,
        "cancel_initiated_at": _rfc3339(job.cancel_requested_at),
        "results_url": f"{origin}/v1/messages/batches/{job.id}/results" if ended else None,
    }


def _origin(request: web.Request) -> str:
    return str(request.url.origin())


def _requests(body: Any) -> list[tuple[str, Any]]:
    """The (custom_id, params) of a creation body; raises `ApiError` as Anthropic does."""
    if not isinstance(body, dict):
        raise ApiError(400, "There was an issue with your request body: not valid JSON.")
    for key in body:
        if key != "requests":
            raise ApiError(400, f"{key}: Extra inputs are not permitted")
    raw = body.get("requests")
    if not isinstance(raw, list):
        raise ApiError(
            400,
            "requests: Field required" if raw is None else "requests: Input should be a valid list",
        )
    if not raw:
        raise ApiError(400, "requests: List should have at least 1 item after validation, not 0")
    if len(raw) > MAX_REQUESTS:
        raise ApiError(400, f"requests: List should have at most {MAX_REQUESTS} items")
    out: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ApiError(400, f"requests.{i}: Input should be a valid dictionary")
        for key in ("custom_id", "params"):
            if key not in item:
                raise ApiError(400, f"requests.{i}.{key}: Field required")
        for key in item:
            if key not in ("custom_id", "params"):
                raise ApiError(400, f"requests.{i}.{key}: Extra inputs are not permitted")
        custom_id = item["custom_id"]
        if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):
            raise ApiError(
                400,
                f"requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'",
            )
        if custom_id in seen:
            raise ApiError(400, f"Duplicate custom_id values found in requests: {custom_id!r}")
        if not isinstance(item["params"], dict):
            raise ApiError(400, f"requests.{i}.params: Input should be a valid dictionary")
        seen.add(custom_id)
        out.append((custom_id, item["params"]))
    return out


async def create_batch(request: web.Request) -> web.Response:
    """``POST /v1/messages/batches``."""
    state = request.app[STATE]
    try:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        items = _requests(body)
    except ApiError as err:
        return _error(err)
    passed: Mapping[str, str] = {
        k.lower(): v for k, v in request.headers.items() if k.lower() in _PASSED_HEADERS
    }

    def answer(i: int) -> ItemAnswer:
        return answer_anthropic(state, items[i][1], passed)

    job = Job(
        id="msgbatch_" + uuid.uuid4().hex[:24],
        custom_ids=[custom_id for custom_id, _ in items],
        answer=answer,
        timing=state.batches.timing,
        data={"kind": _KIND},
    )
    state.batches.start(job)
    return _json(batch_object(job, _origin(request)))


def _job(request: web.Request) -> Job:
    batch_id = request.match_info["batch_id"]
    job = request.app[STATE].batches.jobs.get(batch_id)
    if job is None or job.data.get("kind") != _KIND:
        raise ApiError(404, f"message_batch: {batch_id} not found", "not_found_error")
    return job


async def retrieve_batch(request: web.Request) -> web.Response:
    """``GET /v1/messages/batches/{batch_id}``."""
    try:
        return _json(batch_object(_job(request), _origin(request)))
    except ApiError as err:
        return _error(err)


async def cancel_batch(request: web.Request) -> web.Response:
    """``POST /v1/messages/batches/{batch_id}/cancel``: ``canceling``, then ``ended`` with
    the requests not yet run counted as ``canceled``; an ended batch is answered as is."""
    try:
        job = _job(request)
    except ApiError as err:
        return _error(err)
    job.cancel()
    return _json(batch_object(job, _origin(request)))


def _result(custom_id: str, outcome: Outcome, answer: ItemAnswer | None) -> bytes:
    result: dict[str, Any]
    if outcome is Outcome.CANCELLED:
        result = {"type": "canceled"}
    elif outcome is Outcome.EXPIRED:
        result = {"type": "expired"}
    elif answer is not None and answer.ok:
        result = {"type": "succeeded", "message": answer.body}
    else:
        assert answer is not None
        result = {"type": "errored", "error": answer.body}
    return orjson.dumps({"custom_id": custom_id, "result": result}) + b"\n"


async def batch_results(request: web.Request) -> web.StreamResponse:
    """``GET /v1/messages/batches/{batch_id}/results``: JSONL, once the batch has ended."""
    try:
        job = _job(request)
        if job.phase is not Phase.ENDED:
            raise ApiError(
                404,
                f"message_batch: results of {job.id} are not available until it has ended",
                "not_found_error",
            )
    except ApiError as err:
        return _error(err)
    resp = web.StreamResponse(headers=headers(new_request_id(), "application/binary"))
    await resp.prepare(request)
    for r in job.results:
        await resp.write(_result(r.custom_id, r.outcome, r.answer))
    await resp.write_eof()
    return resp


async def delete_batch(request: web.Request) -> web.Response:
    """``DELETE /v1/messages/batches/{batch_id}``: only once it has ended."""
    try:
        job = _job(request)
        if job.phase is not Phase.ENDED:
            raise ApiError(
                400, f"Message batch {job.id} is still in progress; cancel it before deleting it."
            )
    except ApiError as err:
        return _error(err)
    del request.app[STATE].batches.jobs[job.id]
    return _json({"id": job.id, "type": "message_batch_deleted"})


async def list_batches(request: web.Request) -> web.Response:
    """``GET /v1/messages/batches?before_id=&after_id=&limit=``: newest first."""
    jobs = [
        j for j in reversed(request.app[STATE].batches.jobs.values()) if j.data.get("kind") == _KIND
    ]
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 1000:
        return _error(ApiError(400, "limit: Input should be between 1 and 1000"))
    ids = [j.id for j in jobs]
    after, before = request.query.get("after_id"), request.query.get("before_id")
    if after is not None:
        rest = jobs[ids.index(after) + 1 :] if after in ids else []
        page, has_more = rest[:limit], len(rest) > limit
    elif before is not None:
        rest = jobs[: ids.index(before)] if before in ids else []
        page, has_more = rest[-limit:], len(rest) > limit
    else:
        page, has_more = jobs[:limit], len(jobs) > limit
    origin = _origin(request)
    return _json(
        {
            "data": [batch_object(j, origin) for j in page],
            "has_more": has_more,
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
        }
    )


def add_routes(app: web.Application) -> None:
    """Register the Message Batches endpoints on `app`."""
    app.router.add_post("/v1/messages/batches", create_batch)
    app.router.add_get("/v1/messages/batches", list_batches)
    app.router.add_get("/v1/messages/batches/{batch_id}", retrieve_batch)
    app.router.add_delete("/v1/messages/batches/{batch_id}", delete_batch)
    app.router.add_post("/v1/messages/batches/{batch_id}/cancel", cancel_batch)
    app.router.add_get("/v1/messages/batches/{batch_id}/results", batch_results)
