"""OpenAI's Batch API: ``POST /v1/batches``, ``GET /v1/batches[/{id}]``, ``.../cancel``.

A batch reads a ``.jsonl`` file uploaded with purpose ``batch``, one request a line
(``{"custom_id", "method": "POST", "url", "body"}``, ``url`` equal to the batch's
``endpoint``: ``/v1/chat/completions`` or ``/v1/embeddings``). It goes ``validating`` ->
``in_progress`` -> ``finalizing`` -> ``completed``; or ``failed`` (with ``errors``, each
naming its ``line``) when a line is not valid, ``expired`` when its completion window
passes first, ``cancelling`` -> ``cancelled`` when cancelled. Answers go to the output file
(2xx) and the error file (the others, and the requests expired or cancelled before they
ran), one line each in OpenAI's format: ``{"id", "custom_id", "response": {"status_code",
"request_id", "body"}, "error"}``. ``request_counts.failed`` counts the error file's lines.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from llmesh.services.emulator.batch_items import answer_openai
from llmesh.services.emulator.batches import End, ItemAnswer, Job, Outcome, Phase
from llmesh.services.emulator.errors import ApiError
from llmesh.services.emulator.openai_files import (
    add_file,
    error_response,
    json_response,
    new_id,
)
from llmesh.services.emulator.state import STATE

__all__ = ["add_routes"]

ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings")
"""The endpoints a batch may run (those the emulator serves)."""

MAX_REQUESTS = 50_000
"""The most requests one batch file may hold (OpenAI's limit)."""

_EXPIRED = {
    "code": "batch_expired",
    "message": "This request could not be executed before the completion window expired.",
}
_CANCELLED = {
    "code": "batch_cancelled",
    "message": "This request was not executed because the batch was cancelled.",
}


def _line_error(code: str, line: int, message: str, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "line": line, "message": message, "param": param}


def parse_input(content: bytes, endpoint: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the requests, the validation errors) of a batch input file."""
    requests: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    lines = [line for line in content.splitlines() if line.strip()]
    if not lines:
        return [], [
            {"code": "empty_file", "line": None, "message": "The file is empty.", "param": None}
        ]
    if len(lines) > MAX_REQUESTS:
        message = f"The batch input file has more than {MAX_REQUESTS} requests."
        return [], [{"code": "too_many_requests", "line": None, "message": message, "param": None}]
    for number, raw in enumerate(lines, start=1):
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            line = None
        if not isinstance(line, dict):
            errors.append(
                _line_error(
                    "invalid_json_line", number, "This line is not parseable as valid JSON."
                )
            )
            continue
        missing = [k for k in ("custom_id", "method", "url", "body") if k not in line]
        if missing:
            errors.append(
                _line_error(
                    "missing_required_parameter",
                    number,
                    f"Missing required parameter: '{missing[0]}'.",
                    missing[0],
                )
            )
            continue
        custom_id = line["custom_id"]
        if not isinstance(custom_id, str) or not custom_id:
            errors.append(
                _line_error("invalid_value", number, "custom_id must be a string.", "custom_id")
            )
        elif custom_id in seen:
            errors.append(
                _line_error(
                    "duplicate_custom_id",
                    number,
                    f"The custom_id for this request is a duplicate of another request: "
                    f"{custom_id}. The custom_id parameter must be unique for each request "
                    "in a batch.",
                    "custom_id",
                )
            )
        elif line["method"] != "POST":
            errors.append(
                _line_error("invalid_method", number, "The method must be 'POST'.", "method")
            )
        elif line["url"] != endpoint:
            errors.append(
                _line_error(
                    "invalid_url",
                    number,
                    f"The URL provided for this request does not match the batch endpoint "
                    f"{endpoint}.",
                    "url",
                )
            )
        elif not isinstance(line["body"], dict):
            errors.append(_line_error("invalid_value", number, "body must be an object.", "body"))
        else:
            seen.add(custom_id)
            requests.append(line)
    return requests, errors


def _result_line(custom_id: str, answer: ItemAnswer | None, error: dict[str, str] | None) -> bytes:
    response: dict[str, Any] | None = None
    if answer is not None:
        response = {
            "status_code": answer.status,
            "request_id": answer.request_id,
            "body": answer.body,
        }
    line = {
        "id": new_id("batch_req_", 32),
        "custom_id": custom_id,
        "response": response,
        "error": error,
    }
    return orjson.dumps(line) + b"\n"


def _finish(app: web.Application) -> Any:
    """The finalizing step of a job: write its output and error files."""

    def finish(job: Job) -> None:
        output: list[bytes] = []
        failed: list[bytes] = []
        for r in job.results:
            if r.outcome is Outcome.ANSWERED and r.answer is not None and r.answer.ok:
                output.append(_result_line(r.custom_id, r.answer, None))
            elif r.outcome is Outcome.ANSWERED:
                failed.append(_result_line(r.custom_id, r.answer, None))
            else:
                error = _EXPIRED if r.outcome is Outcome.EXPIRED else _CANCELLED
                failed.append(_result_line(r.custom_id, None, error))
        if output:
            name = f"batch_{job.id}_output.jsonl"
            job.data["output_file_id"] = add_file(app, b"".join(output), name, "batch_output")
        if failed:
            name = f"batch_{job.id}_error.jsonl"
            job.data["error_file_id"] = add_file(app, b"".join(failed), name, "batch_output")

    return finish


def _usage(job: Job) -> dict[str, Any]:
    """The batch's token usage: the sum over its successful answers."""
    inp = cached = out = reasoning = 0
    for r in job.results:
        if r.answer is None or not r.answer.ok:
            continue
        use = r.answer.body.get("usage") or {}
        inp += int(use.get("prompt_tokens") or 0)
        out += int(use.get("completion_tokens") or 0)
        cached += int((use.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        reasoning += int((use.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
    return {
        "input_tokens": inp,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": inp + out,
    }


def _status(job: Job) -> str:
    if job.phase is Phase.ENDED:
        assert job.end is not None
        return str(job.end.value)
    if job.cancel_requested_at is not None:
        return "cancelling"
    return str(job.phase.value)


def _at(job: Job, end: End) -> int | None:
    return int(job.ended_at) if job.end is end and job.ended_at is not None else None


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def batch_object(job: Job) -> dict[str, Any]:
    """The ``Batch`` object of a job."""
    counted = job.phase is not Phase.VALIDATING and job.end is not End.FAILED
    answered_ok = job.count(Outcome.ANSWERED, ok=True)
    return {
        "id": job.id,
        "object": "batch",
        "endpoint": job.data["endpoint"],
        "model": job.data.get("model"),
        "errors": {"object": "list", "data": job.errors} if job.errors else None,
        "input_file_id": job.data["input_file_id"],
        "completion_window": "24h",
        "status": _status(job),
        "output_file_id": job.data.get("output_file_id"),
        "error_file_id": job.data.get("error_file_id"),
        "created_at": int(job.created_at),
        "in_progress_at": _int(job.in_progress_at),
        "expires_at": int(job.expires_at),
        "finalizing_at": _int(job.finalizing_at),
        "completed_at": _at(job, End.COMPLETED),
        "failed_at": _at(job, End.FAILED),
        "expired_at": _at(job, End.EXPIRED),
        "cancelling_at": _int(job.cancel_requested_at),
        "cancelled_at": _at(job, End.CANCELLED),
        "request_counts": {
            "total": job.total if counted else 0,
            "completed": answered_ok,
            "failed": len(job.results) - answered_ok,
        },
        "usage": _usage(job),
        "metadata": job.data.get("metadata"),
    }


def _metadata(raw: Any) -> dict[str, str] | None:
    if raw is None:
        return None
    if (
        not isinstance(raw, dict)
        or len(raw) > 16
        or not all(isinstance(k, str) and len(k) <= 64 for k in raw)
        or not all(isinstance(v, str) and len(v) <= 512 for v in raw.values())
    ):
        raise ApiError(
            400,
            "Invalid 'metadata': at most 16 string keys of up to 64 characters, with string "
            "values of up to 512 characters.",
            param="metadata",
        )
    return raw


async def create_batch(request: web.Request) -> web.Response:
    """``POST /v1/batches``."""
    book = request.app[STATE].batches
    try:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            raise ApiError(400, "We could not parse the JSON body of your request.")
        for key in ("input_file_id", "endpoint", "completion_window"):
            if key not in body:
                raise ApiError(400, f"Missing required parameter: '{key}'.", param=key)
        endpoint = body["endpoint"]
        if endpoint not in ENDPOINTS:
            raise ApiError(
                400,
                f"Invalid value for 'endpoint': {endpoint!r}. Supported values are: "
                + ", ".join(repr(e) for e in ENDPOINTS)
                + ".",
                param="endpoint",
            )
        if body["completion_window"] != "24h":
            raise ApiError(
                400,
                "Invalid value for 'completion_window'. Supported values are: '24h'.",
                param="completion_window",
            )
        metadata = _metadata(body.get("metadata"))
        file_id = body["input_file_id"]
        entry = book.files.get(file_id) if isinstance(file_id, str) else None
        if entry is None:
            raise ApiError(404, f"No such File object: {file_id}", param="input_file_id")
        if entry["purpose"] != "batch":
            raise ApiError(
                400,
                f"File {file_id} was not uploaded with purpose 'batch'.",
                param="input_file_id",
            )
    except ApiError as err:
        return error_response(err)
    items, errors = parse_input(entry["content"], endpoint)
    state = request.app[STATE]
    key = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()

    def answer(i: int) -> ItemAnswer:
        return answer_openai(state, endpoint, items[i]["body"], key)

    first_model = items[0]["body"].get("model") if items else None
    job = Job(
        id=new_id("batch_", 32),
        custom_ids=[line["custom_id"] for line in items],
        answer=answer,
        timing=book.timing,
        validate=lambda: errors,
        finish=_finish(request.app),
        data={
            "kind": "openai",
            "endpoint": endpoint,
            "input_file_id": file_id,
            "metadata": metadata,
            "model": first_model if isinstance(first_model, str) else None,
        },
    )
    book.start(job)
    return json_response(batch_object(job))


def _job(request: web.Request) -> Job:
    batch_id = request.match_info["batch_id"]
    job = request.app[STATE].batches.jobs.get(batch_id)
    if job is None or job.data.get("kind") != "openai":
        raise ApiError(404, f"No batch found with id '{batch_id}'.", param="batch_id")
    return job


async def retrieve_batch(request: web.Request) -> web.Response:
    """``GET /v1/batches/{batch_id}``."""
    try:
        return json_response(batch_object(_job(request)))
    except ApiError as err:
        return error_response(err)


async def cancel_batch(request: web.Request) -> web.Response:
    """``POST /v1/batches/{batch_id}/cancel``: ``cancelling``, then ``cancelled``."""
    try:
        job = _job(request)
        if job.phase is Phase.ENDED:
            raise ApiError(409, f"Cannot cancel a batch with status '{_status(job)}'.")
    except ApiError as err:
        return error_response(err)
    job.cancel()
    return json_response(batch_object(job))


async def list_batches(request: web.Request) -> web.Response:
    """``GET /v1/batches?after=&limit=``: newest first."""
    jobs = [
        j
        for j in reversed(request.app[STATE].batches.jobs.values())
        if j.data.get("kind") == "openai"
    ]
    after = request.query.get("after")
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        return error_response(
            ApiError(400, "Invalid 'limit': must be between 1 and 100.", param="limit")
        )
    if after is not None:
        ids = [j.id for j in jobs]
        jobs = jobs[ids.index(after) + 1 :] if after in ids else []
    page = jobs[:limit]
    data = [batch_object(j) for j in page]
    return json_response(
        {
            "object": "list",
            "data": data,
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
            "has_more": len(jobs) > limit,
        }
    )


def add_routes(app: web.Application) -> None:
    """Register the Batch API endpoints on `app`."""
    app.router.add_post("/v1/batches", create_batch)
    app.router.add_get("/v1/batches", list_batches)
    app.router.add_get("/v1/batches/{batch_id}", retrieve_batch)
    app.router.add_post("/v1/batches/{batch_id}/cancel", cancel_batch)
