"""The running gateway fuzzed from its own OpenAPI document (``/openapi.json``) with
schemathesis, on a whole mesh whose providers are the emulator.

Every operation gets requests that fit its schema and requests that do not, a bounded number
of each (`EXAMPLES`, or ``LLMESH_FUZZ_EXAMPLES``), drawn the same way every run. For each:
no 5xx, an answer within `REQUEST_TIMEOUT` (a hang fails the request), a status and content
type the document lists, a body that fits its documented schema, and every 4xx in the JSON
error shape of its API. Afterwards the gateway still answers its health check and a real call.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from llmesh.gateway.openapi import document
from tests.support.fuzz import examples
from tests.support.mesh import Mesh

EXAMPLES = 20
"""Requests per operation in ``make test`` (half fitting the schema, half not, about)."""
SERVED = {"/v1/embeddings": "emulator/embed"}
"""A model the mesh serves, per path (else `SERVED_CHAT`): generated bodies name one half the
time, so calls reach the orchestrator and the emulator rather than stop at routing."""
SERVED_CHAT = "emulator/echo"
REQUEST_TIMEOUT = 30.0
"""Seconds a request may take before it counts as a hang."""

OPERATIONS = sorted(
    (method.upper(), path) for path, item in document()["paths"].items() for method in item
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_mesh() -> Iterator[Mesh]:
    """A mesh of its own: the fuzzing must not disturb the session's shared one."""
    mesh = Mesh().start()
    try:
        for _ in range(300):  # ready once the orchestrator's warm-up is over
            if httpx.get(f"{mesh.gateway_url}/readyz", timeout=10).status_code == 200:
                break
            time.sleep(0.1)
        yield mesh
    finally:
        mesh.stop()


@pytest.fixture(scope="module")
def api(fuzz_mesh: Mesh) -> Any:
    """The document as the running gateway serves it."""
    return schemathesis.openapi.from_url(f"{fuzz_mesh.gateway_url}/openapi.json")


def assert_error_shape(body: Any, path: str) -> None:
    """`body` is the documented JSON error of the API `path` belongs to."""
    if path.startswith("/v1/messages"):  # Anthropic's
        assert body["type"] == "error", body
        assert set(body["error"]) == {"type", "message"}, body
        assert all(isinstance(v, str) for v in body["error"].values()), body
        return
    error = body["error"]  # OpenAI's
    assert set(error) == {"message", "type", "param", "code"}, body
    assert isinstance(error["message"], str) and isinstance(error["type"], str), body
    assert all(error[k] is None or isinstance(error[k], str) for k in ("param", "code")), body


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
@pytest.mark.timeout(60 + 2 * examples(EXAMPLES))  # the whole run; one request: REQUEST_TIMEOUT
def test_operation(api: Any, fuzz_mesh: Mesh, method: str, path: str) -> None:
    operation = api[path][method]
    cases = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )
    seen: dict[int, int] = {}

    with requests.Session() as session:

        @settings(max_examples=examples(EXAMPLES))
        @given(case=cases, served=st.booleans())
        def fuzz(case: Any, served: bool) -> None:
            if served and isinstance(case.body, dict) and "model" in case.body:
                case.body["model"] = SERVED.get(path, SERVED_CHAT)
            response = case.call(
                base_url=fuzz_mesh.gateway_url, session=session, timeout=REQUEST_TIMEOUT
            )
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            case.validate_response(response, checks=CHECKS)
            if 400 <= response.status_code < 500:
                assert_error_shape(response.json(), path)

        fuzz()
    assert sum(seen.values()) > 0, seen
    print(f"{method} {path}: {sum(seen.values())} requests, statuses {dict(sorted(seen.items()))}")


def test_the_gateway_is_alive_and_serving_after_the_fuzzing(fuzz_mesh: Mesh) -> None:
    url = fuzz_mesh.gateway_url
    assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    reply = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "emulator/echo", "messages": [{"role": "user", "content": "still here"}]},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"]
