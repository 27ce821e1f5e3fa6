"""The console's data endpoints on a whole mesh with keys: recent calls, usage and the live
mesh stream, each scoped by the orchestrator to the caller's tenant (``ops`` is an admin
tenant and sees every one); and the console's files with their Content-Security-Policy."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import grpc
import httpx
import orjson
import pytest

from llmesh.v1 import batches_pb2, batches_pb2_grpc, chat_pb2
from tests.console.conftest import ConsoleMesh, bearer, wait_for


def _chat(mesh: ConsoleMesh, key: str, text: str, **headers: str) -> str:
    body = {
        "input": {
            "model": "openai/gpt-4o-mini",
            "messages": [{"role": "ROLE_USER", "content": text}],
        }
    }
    sent = bearer(key) | headers
    r = httpx.post(f"{mesh.url}/api/v1/chat", json=body, headers=sent, timeout=30)
    assert r.status_code == 200, r.text
    request_id: str = r.json()["requestId"]
    return request_id


def _calls(mesh: ConsoleMesh, key: str, **params: Any) -> list[dict[str, Any]]:
    r = httpx.get(f"{mesh.url}/api/v1/calls", params=params, headers=bearer(key), timeout=10)
    assert r.status_code == 200, r.text
    calls: list[dict[str, Any]] = r.json().get("calls", [])
    return calls


@pytest.fixture(scope="module")
def two_calls(console_mesh: ConsoleMesh) -> tuple[str, str]:
    """One finished call of acme and one of globex, both in the ledger."""
    acme = _chat(console_mesh, console_mesh.keys.acme, "hello from acme")
    globex = _chat(console_mesh, console_mesh.keys.globex, "hello from globex")
    admin = console_mesh.keys.admin
    wait_for(
        lambda: {acme, globex} <= {c["requestId"] for c in _calls(console_mesh, admin)},
        "both calls in the ledger",
    )
    return acme, globex


def test_a_tenant_key_lists_only_its_own_calls(
    console_mesh: ConsoleMesh, two_calls: tuple[str, str]
) -> None:
    acme, globex = two_calls
    mine = _calls(console_mesh, console_mesh.keys.acme)
    assert acme in {c["requestId"] for c in mine}
    assert {c["tenant"] for c in mine} == {"acme"}
    # naming another tenant changes nothing for a tenant's key
    named = _calls(console_mesh, console_mesh.keys.acme, tenant="globex")
    assert {c["tenant"] for c in named} == {"acme"}
    # and another tenant's call is as absent as an unknown one
    assert _calls(console_mesh, console_mesh.keys.acme, request_id=globex) == []
    assert _calls(console_mesh, console_mesh.keys.acme, request_id="nope") == []


def test_an_admin_key_sees_every_tenant_and_can_pick_one(
    console_mesh: ConsoleMesh, two_calls: tuple[str, str]
) -> None:
    acme, globex = two_calls
    every = _calls(console_mesh, console_mesh.keys.admin)
    assert {acme, globex} <= {c["requestId"] for c in every}
    picked = _calls(console_mesh, console_mesh.keys.admin, tenant="globex")
    assert {c["tenant"] for c in picked} == {"globex"}
    [call] = _calls(console_mesh, console_mesh.keys.admin, request_id=acme)
    assert call["tenant"] == "acme"
    assert call["state"] == "CALL_STATE_OK"
    assert call["provider"] == "openai" and call["model"] == "gpt-4o-mini"
    assert int(call["usage"]["outputTokens"]) > 0 and call["costUsd"] > 0
    [attempt] = call["attempts"]
    assert attempt["outcome"] == "ATTEMPT_OUTCOME_SUCCEEDED"
    assert attempt["provider"] == "openai" and attempt["latency"].endswith("s")


def test_the_newest_call_comes_first_and_limit_caps_the_list(
    console_mesh: ConsoleMesh, two_calls: tuple[str, str]
) -> None:
    _, globex = two_calls
    latest = _calls(console_mesh, console_mesh.keys.admin, limit="1")
    assert [c["requestId"] for c in latest] == [globex]


def test_a_bad_limit_or_parameter_is_a_400_naming_it(console_mesh: ConsoleMesh) -> None:
    for params, field in (({"limit": "-1"}, "limit"), ({"key": "x"}, "key")):
        r = httpx.get(
            f"{console_mesh.url}/api/v1/calls",
            params=params,
            headers=bearer(console_mesh.keys.admin),
        )
        assert r.status_code == 400
        error = r.json()["error"]
        assert error["reason"] == "INVALID_REQUEST"
        assert error["fieldViolations"][0]["field"] == field


def test_without_a_key_every_console_endpoint_is_refused(console_mesh: ConsoleMesh) -> None:
    assert httpx.get(f"{console_mesh.url}/api/v1/calls").status_code == 401
    assert httpx.post(f"{console_mesh.url}/api/v1/usage", json={}).status_code == 401
    r = httpx.post(f"{console_mesh.url}/api/v1/mesh/stream", json={})
    assert r.status_code == 401
    assert r.json()["error"]["reason"] == "UNAUTHENTICATED"


def test_usage_is_scoped_to_the_keys_tenant(
    console_mesh: ConsoleMesh, two_calls: tuple[str, str]
) -> None:
    body = {"groupBy": ["USAGE_GROUPING_TENANT"]}

    def tenants(key: str) -> set[str]:
        r = httpx.post(f"{console_mesh.url}/api/v1/usage", json=body, headers=bearer(key))
        assert r.status_code == 200, r.text
        return {t["tenant"] for t in r.json()["totals"]}

    assert tenants(console_mesh.keys.acme) == {"acme"}
    assert {"acme", "globex"} <= tenants(console_mesh.keys.admin)


def _first_snapshot(console_mesh: ConsoleMesh, key: str) -> dict[str, Any]:
    url = f"{console_mesh.url}/api/v1/mesh/stream"
    body = {"interval": "0.2s", "recentCalls": 5}
    with httpx.stream("POST", url, json=body, headers=bearer(key), timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                snapshot: dict[str, Any] = orjson.loads(line[6:])
                return snapshot
    raise AssertionError("the stream ended without a snapshot")


def test_the_mesh_stream_sends_targets_with_health_and_the_callers_calls(
    console_mesh: ConsoleMesh, two_calls: tuple[str, str]
) -> None:
    snapshot = _first_snapshot(console_mesh, console_mesh.keys.acme)
    targets = {t["name"]: t for t in snapshot["targets"]}
    used = targets["openai/gpt-4o-mini"]
    assert used["breakerState"] == "BREAKER_STATE_CLOSED"
    assert used["recentAttempts"] >= 2  # both tenants' calls: a target's health is the mesh's
    assert used["latency"].endswith("s")
    assert {c["tenant"] for c in snapshot["recentCalls"]} == {"acme"}
    admin = _first_snapshot(console_mesh, console_mesh.keys.admin)
    assert {"acme", "globex"} <= {c["tenant"] for c in admin["recentCalls"]}


def test_the_console_page_and_files_carry_a_strict_csp(console_mesh: ConsoleMesh) -> None:
    page = httpx.get(f"{console_mesh.url}/console")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    # no inline script: every <script> loads a file of the console
    scripts = re.findall(r"<script[^>]*>", page.text)
    assert scripts and all('src="/console/' in s for s in scripts)
    js = httpx.get(f"{console_mesh.url}/console/app.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert js.headers["content-security-policy"] == csp
    assert httpx.get(f"{console_mesh.url}/console/nope.js").status_code == 404
    assert httpx.get(f"{console_mesh.url}/console/index.html").status_code == 404


def _budgets(mesh: ConsoleMesh, key: str, **body: str) -> dict[str, dict[str, Any]]:
    r = httpx.post(f"{mesh.url}/api/v1/budgets", json=body, headers=bearer(key))
    assert r.status_code == 200, r.text
    out = {}
    for b in r.json().get("budgets", []):
        scope = "key" if b["scope"] == "BUDGET_SCOPE_KEY" else "tenant"
        out[f"{scope}:{b['name']}"] = b
    return out


def test_budgets_show_caps_spend_and_what_is_left_to_the_right_keys(
    console_mesh: ConsoleMesh, two_calls: tuple[str, str]
) -> None:
    mine = _budgets(console_mesh, console_mesh.keys.acme, tenant="globex")
    acme = mine["tenant:acme"]
    assert acme["dailyUsd"] == 5.0 and not acme.get("wildcard", False)
    assert "monthlyUsd" not in acme and "remainingThisMonthUsd" not in acme  # uncapped
    assert acme["spentTodayUsd"] > 0
    assert acme["remainingTodayUsd"] == pytest.approx(5.0 - acme["spentTodayUsd"])
    assert acme["spentThisMonthUsd"] >= acme["spentTodayUsd"]
    # its keys, under the "*" key cap; never globex's tenant or keys
    [key] = [b for name, b in mine.items() if name.startswith("key:")]
    assert key["tenant"] == "acme" and key["wildcard"] and key["dailyUsd"] == 2.0
    assert "tenant:globex" not in mine
    every = _budgets(console_mesh, console_mesh.keys.admin)
    globex = every["tenant:globex"]
    assert globex["wildcard"] and globex["monthlyUsd"] == 100.0 and "dailyUsd" not in globex
    assert globex["remainingThisMonthUsd"] == pytest.approx(100.0 - globex["spentThisMonthUsd"])
    assert {"tenant:acme", "tenant:globex"} <= set(every)
    assert {b["tenant"] for n, b in every.items() if n.startswith("key:")} >= {"acme", "globex"}
    # GET answers the same as an empty POST
    r = httpx.get(f"{console_mesh.url}/api/v1/budgets", headers=bearer(console_mesh.keys.acme))
    assert set(_budgets(console_mesh, console_mesh.keys.acme)) == {
        ("key:" if b["scope"] == "BUDGET_SCOPE_KEY" else "tenant:") + b["name"]
        for b in r.json()["budgets"]
    }


def test_the_direct_http_path_serves_the_console_and_its_endpoints_too(
    console_mesh: ConsoleMesh, two_calls: tuple[str, str]
) -> None:
    direct = ConsoleMesh(
        replace(console_mesh.mesh, gateway_url=console_mesh.mesh.direct_url), console_mesh.keys
    )
    acme, globex = two_calls
    assert {c["requestId"] for c in _calls(direct, direct.keys.acme)} >= {acme}
    assert _calls(direct, direct.keys.acme, request_id=globex) == []
    snapshot = _first_snapshot(direct, direct.keys.acme)
    assert snapshot["targets"] and {c["tenant"] for c in snapshot["recentCalls"]} == {"acme"}
    assert "tenant:acme" in _budgets(direct, direct.keys.acme)
    page = httpx.get(f"{direct.url}/console")
    assert page.status_code == 200 and "content-security-policy" in page.headers


def test_with_tracing_off_a_call_keeps_its_callers_trace_id(console_mesh: ConsoleMesh) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    key = console_mesh.keys.acme
    traced = _chat(console_mesh, key, "traced", traceparent=f"00-{trace_id}-00f067aa0ba902b7-01")
    malformed = _chat(console_mesh, key, "malformed", traceparent="00-not-a-trace-01")
    untraced = _chat(console_mesh, key, "untraced")

    def trace_ids() -> dict[str, str] | None:
        calls = {c["requestId"]: c.get("traceId", "") for c in _calls(console_mesh, key)}
        return calls if {traced, malformed, untraced} <= set(calls) else None

    found = wait_for(trace_ids, "the three calls in the ledger")
    assert (found[traced], found[malformed], found[untraced]) == (trace_id, "", "")


def _openai_chat(mesh: ConsoleMesh, key: str, messages: list[dict[str, str]], **extra: Any) -> str:
    body = {"model": "openai/gpt-4o-mini", "messages": messages, **extra}
    r = httpx.post(f"{mesh.url}/v1/chat/completions", json=body, headers=bearer(key), timeout=30)
    assert r.status_code == 200, r.text
    return r.headers["x-request-id"]


def _savings(mesh: ConsoleMesh, key: str) -> tuple[float, float, float]:
    r = httpx.post(f"{mesh.url}/api/v1/usage", json={}, headers=bearer(key), timeout=10)
    assert r.status_code == 200, r.text
    [total] = r.json()["totals"]
    return (
        total.get("cacheSavingsUsd", 0.0),
        total.get("promptCacheSavingsUsd", 0.0),
        total.get("responseCacheSavingsUsd", 0.0),
    )


def test_usage_tells_prompt_cache_savings_from_response_cache_savings(
    console_mesh: ConsoleMesh,
) -> None:
    key = console_mesh.keys.globex
    before = _savings(console_mesh, key)
    # a long shared prefix, asked twice with different questions: the second reads the
    # provider's prompt cache (above temperature 0, the response cache stays out of it)
    system = {"role": "system", "content": "You answer questions about meshes. " * 300}
    made = [
        _openai_chat(console_mesh, key, [system, {"role": "user", "content": q}], temperature=0.7)
        for q in ("What is a breaker?", "What is a hedge?")
    ]
    # the same question twice at temperature 0: the second is a response-cache hit
    same = [{"role": "user", "content": "Say something cacheable."}]
    made += [_openai_chat(console_mesh, key, same, temperature=0) for _ in range(2)]

    def recorded() -> list[dict[str, Any]] | None:
        calls = {c["requestId"]: c for c in _calls(console_mesh, key)}
        return [calls[r] for r in made] if set(made) <= set(calls) else None

    first, read, asked, hit = wait_for(recorded, "the four calls in the ledger")
    assert int(read["usage"].get("cacheReadTokens", 0)) > 0 and not read.get("cacheHit")
    assert hit.get("cacheHit") and not asked.get("cacheHit")
    prompt_saved = read["cacheSavingsUsd"]
    response_saved = hit["cacheSavingsUsd"]
    assert prompt_saved > 0 and response_saved > 0
    assert first.get("cacheSavingsUsd", 0.0) == asked.get("cacheSavingsUsd", 0.0) == 0.0
    after = _savings(console_mesh, key)
    grown = [a - b for a, b in zip(after, before, strict=True)]
    assert grown == [
        pytest.approx(prompt_saved + response_saved),
        pytest.approx(prompt_saved),
        pytest.approx(response_saved),
    ]


def _create_batch(mesh: ConsoleMesh, key: str) -> str:
    item = batches_pb2.BatchItem(
        custom_id="one",
        chat=chat_pb2.ChatInput(
            model="emulator/echo",
            messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content="hi")],
        ),
    )
    with grpc.insecure_channel(mesh.mesh.orchestrator_address) as channel:
        created = batches_pb2_grpc.BatchServiceStub(channel).CreateBatch(
            batches_pb2.CreateBatchRequest(items=[item], mode=batches_pb2.BATCH_MODE_MESH),
            metadata=[("authorization", f"Bearer {key}")],
            timeout=30,
        )
    batch_id: str = created.batch.id
    return batch_id


def test_batches_and_dead_letters_are_the_callers_tenants_only(console_mesh: ConsoleMesh) -> None:
    acme, globex = console_mesh.keys.acme, console_mesh.keys.globex
    batch_id = _create_batch(console_mesh, acme)
    base = f"{console_mesh.url}/api/v1/batches"

    def listed(key: str) -> set[str]:
        r = httpx.get(base, params={"page_size": "100"}, headers=bearer(key), timeout=10)
        assert r.status_code == 200, r.text
        return {b["id"] for b in r.json().get("batches", [])}

    assert batch_id in listed(acme) and batch_id not in listed(globex)
    r = httpx.get(f"{base}/{batch_id}", headers=bearer(acme), timeout=10)
    assert r.status_code == 200 and r.json()["batch"]["tenant"] == "acme"
    r = httpx.get(f"{base}/{batch_id}/dead-letters", headers=bearer(acme), timeout=10)
    assert r.status_code == 200 and r.json().get("deadLetters", []) == []
    # another tenant's batch is as absent as an unknown one
    for key, batch in ((globex, batch_id), (acme, "batch-unknown")):
        for path in (f"{base}/{batch}", f"{base}/{batch}/dead-letters"):
            r = httpx.get(path, headers=bearer(key), timeout=10)
            assert r.status_code == 404, r.text
    assert httpx.get(base, timeout=10).status_code == 401


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("", {"page_size": "ten"}, "page_size"),
        ("", {"page_size": "0"}, "page_size"),
        ("", {"limit": "5"}, "limit"),
        ("/batch-x", {"page_size": "5"}, "page_size"),  # one batch has no pages
        ("/batch-x/dead-letters", {"cursor": "x"}, "cursor"),
    ],
)
def test_a_bad_batches_parameter_is_a_400_naming_it(
    console_mesh: ConsoleMesh, path: str, params: dict[str, str], param: str
) -> None:
    r = httpx.get(
        f"{console_mesh.url}/api/v1/batches{path}",
        params=params,
        headers=bearer(console_mesh.keys.acme),
        timeout=10,
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["reason"] == "INVALID_REQUEST"
    assert error["fieldViolations"][0]["field"] == param
