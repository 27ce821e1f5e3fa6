"""The console in a real browser (Debian's chromium, driven by Playwright) on a whole mesh.

One mesh and one browser serve the module. Each test saves a screenshot of its view into
docs/console/ (with LLMESH_SCREENSHOTS=1), where the README shows them.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from playwright.sync_api import Browser, Page, Response, sync_playwright

from llmesh.services.common.batch_settings import BatchConfig
from llmesh.v1 import batches_pb2, batches_pb2_grpc, chat_pb2
from tests.console.conftest import SCREENSHOTS, ConsoleMesh, bearer, wait_for
from tests.support.mesh import Mesh

BUDGET_BYTES = 300 * 1024
"""The most the console's first load may weigh, gzip-compressed."""

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    """Headless chromium, launched by path (Playwright downloads no browser)."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab (its own session storage), wide enough for the views."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    yield tab
    context.close()


def _open(page: Page, mesh: ConsoleMesh, key: str, view: str) -> None:
    """Load the console on `view` and enter `key` once."""
    page.goto(f"{mesh.url}/console#{view}")
    page.fill("#key-input", key)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("[data-testid=key-state]:has-text('key set')")


def _chat(
    mesh: ConsoleMesh, key: str, model: str = "openai/gpt-4o-mini", **headers: str
) -> httpx.Response:
    body = {"input": {"model": model, "messages": [{"role": "ROLE_USER", "content": "hi"}]}}
    sent = bearer(key) | headers
    return httpx.post(f"{mesh.url}/api/v1/chat", json=body, headers=sent, timeout=30)


def _call(mesh: ConsoleMesh, key: str, request_id: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        r = httpx.get(
            f"{mesh.url}/api/v1/calls", params={"request_id": request_id}, headers=bearer(key)
        )
        calls = r.json().get("calls", [])
        return calls[0] if calls else None

    call: dict[str, Any] = wait_for(found, f"call {request_id} in the ledger")
    return call


def _usd(value: float) -> str:
    """The console's money format (dom.js `usd`)."""
    return f"${value:.6f}" if 0 < value < 0.01 else f"${value:.4f}"


def test_a_streamed_chat_shows_tokens_before_the_finish(
    console_mesh: ConsoleMesh, page: Page
) -> None:
    # the reply pauses after two pieces: the text so far must be on screen, unfinished
    console_mesh.mesh.set_fault("gpt-4o-mini", "stall", after=2, stall_ms=4000, times=1)
    _open(page, console_mesh, console_mesh.keys.acme, "playground")
    page.select_option("[data-testid=model]", "openai/gpt-4o-mini")
    page.fill("[data-testid=prompt]", "Tell me about meshes of services, in a few sentences.")
    page.click("[data-testid=send]")
    page.wait_for_function(
        """() => {
            const reply = document.querySelector('[data-testid=reply]');
            const text = document.querySelector('[data-testid=reply-text]');
            return reply && text && text.textContent.length > 0
                && !reply.classList.contains('done');
        }"""
    )
    partial = page.text_content("[data-testid=reply-text]") or ""
    assert page.text_content("[data-testid=reply-cost]") == "cost \N{EN DASH}"  # no finish yet
    page.wait_for_selector("[data-testid=reply].done")
    final = page.text_content("[data-testid=reply-text]") or ""
    assert final.startswith(partial) and len(final) > len(partial)
    assert "finished: stop" in (page.text_content("[data-testid=reply-status]") or "")
    assert (page.text_content("[data-testid=reply-ttft]") or "").endswith(" ms")
    assert " out" in (page.text_content("[data-testid=reply-tokens]") or "")
    assert (page.text_content("[data-testid=reply-cost]") or "").startswith("cost $")
    trail = page.text_content("[data-testid=reply-trail]") or ""
    assert "openai/gpt-4o-mini" in trail and "succeeded" in trail
    page.screenshot(path=str(SCREENSHOTS / "playground.png"), full_page=True)


def test_a_council_streams_branches_side_by_side_with_the_judge(
    console_mesh: ConsoleMesh, page: Page
) -> None:
    _open(page, console_mesh, console_mesh.keys.acme, "playground")
    page.check("[data-testid=council-toggle]")
    for model in ("openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"):
        page.check(f"[data-testid=members] input[value='{model}']")
    page.select_option("[data-testid=judge]", "openai/gpt-4o")
    page.fill("[data-testid=prompt]", "Name one benefit of a circuit breaker.")
    page.click("[data-testid=send]")
    page.wait_for_selector("[data-testid=judge].done")
    assert page.locator("[data-testid=branch].done").count() == 2
    assert page.text_content("[data-testid=judge-text]")
    page.screenshot(path=str(SCREENSHOTS / "council.png"), full_page=True)


def test_a_fallback_shows_in_the_attempt_trail(console_mesh: ConsoleMesh, page: Page) -> None:
    console_mesh.mesh.set_fault("claude-opus-4-6", "overloaded", times=1)
    _open(page, console_mesh, console_mesh.keys.acme, "playground")
    page.select_option("[data-testid=model]", "anthropic/claude-opus-4-6")
    page.fill("[data-testid=fallbacks]", "anthropic/claude-sonnet-4-6")
    page.fill("[data-testid=prompt]", "Fall back, please.")
    page.click("[data-testid=send]")
    page.wait_for_selector("[data-testid=reply].done")
    trail = page.locator("[data-testid=reply-trail] li").all_text_contents()
    assert len(trail) == 2
    assert "anthropic/claude-opus-4-6" in trail[0] and "failed" in trail[0]
    assert "overloaded" in trail[0]
    assert "anthropic/claude-sonnet-4-6" in trail[1] and "succeeded" in trail[1]


def test_cancel_stops_a_streaming_call(console_mesh: ConsoleMesh, page: Page) -> None:
    # the reply stalls for good after two pieces: only Cancel ends it
    console_mesh.mesh.set_fault("echo", "stall", after=2, times=1)
    _open(page, console_mesh, console_mesh.keys.acme, "playground")
    page.select_option("[data-testid=model]", "compat/echo")
    page.fill("[data-testid=prompt]", "one two three four five six seven eight")
    page.click("[data-testid=send]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=reply-text]')?.textContent.length > 0"
    )
    request_id = page.text_content("[data-testid=reply-request-id]") or ""
    assert request_id
    page.click("[data-testid=cancel]")
    page.wait_for_selector("[data-testid=reply-status]:has-text('cancelled')")
    assert page.is_disabled("[data-testid=cancel]") and page.is_enabled("[data-testid=send]")
    # the orchestrator saw the call end as cancelled, not finished
    call = _call(console_mesh, console_mesh.keys.acme, request_id)
    assert call["state"] == "CALL_STATE_CANCELLED"


def test_after_emulator_faults_a_target_shows_its_breaker_open(
    console_mesh: ConsoleMesh, page: Page
) -> None:
    mesh = console_mesh.mesh
    target = "openai/gpt-4.1-mini"
    _open(page, console_mesh, console_mesh.keys.admin, "mesh")
    row = page.locator(f"[data-testid=targets] tr[data-target='{target}']")
    row.locator("[data-testid=breaker]:has-text('closed')").wait_for()
    mesh.set_fault("gpt-4.1-mini", "server_error")
    try:
        failed = [
            _chat(console_mesh, console_mesh.keys.admin, target, traceparent=TRACEPARENT)
            for _ in range(2)
        ]
    finally:
        httpx.delete(f"{mesh.emulator_url}/emulator/faults", params={"model": "gpt-4.1-mini"})
    assert [r.status_code for r in failed] == [502, 502], [r.text for r in failed]
    row.locator("[data-testid=breaker]:has-text('open')").wait_for()
    # the failed call's drill-down shows its attempt trail
    request_id = failed[-1].headers["x-request-id"]
    page.locator(f"tr[data-request-id='{request_id}']").click()
    page.wait_for_selector(f"[data-testid=detail-request-id]:has-text('{request_id}')")
    trail = page.text_content("[data-testid=detail-trail]") or ""
    assert target in trail and "failed" in trail
    # and the trace id the caller sent (tracing is off here: the caller's trace is kept)
    assert page.text_content("[data-testid=detail-trace-id]") == CALLER_TRACE
    page.screenshot(path=str(SCREENSHOTS / "mesh.png"), full_page=True)


def _cache_both_ways(mesh: ConsoleMesh, key: str) -> None:
    """Calls that save through each cache: a prompt-cache read (a long prefix asked twice,
    above temperature 0) and a response-cache hit (one question twice at temperature 0)."""
    system = {"role": "system", "content": "You answer questions about meshes. " * 300}
    asked = [[system, {"role": "user", "content": q}] for q in ("Breakers?", "Hedges?")]
    bodies = [{"messages": m, "temperature": 0.7} for m in asked]
    same = [{"role": "user", "content": "Say something the console can cache."}]
    bodies += [{"messages": same, "temperature": 0}] * 2
    made = []
    for body in bodies:
        r = httpx.post(
            f"{mesh.url}/v1/chat/completions",
            json={"model": "openai/gpt-4o-mini", **body},
            headers=bearer(key),
            timeout=30,
        )
        assert r.status_code == 200, r.text
        made.append(r.headers["x-request-id"])
    for request_id in made:
        _call(mesh, key, request_id)


def test_a_calls_cost_and_the_budget_left_appear_in_the_usage_view(
    console_mesh: ConsoleMesh, page: Page
) -> None:
    key = console_mesh.keys.acme
    _cache_both_ways(console_mesh, key)
    reply = _chat(console_mesh, key)
    assert reply.status_code == 200
    call = _call(console_mesh, key, reply.json()["requestId"])
    assert call["costUsd"] > 0
    total = httpx.post(f"{console_mesh.url}/api/v1/usage", json={}, headers=bearer(key))
    [whole] = total.json()["totals"]
    assert whole["costUsd"] >= call["costUsd"]
    r = httpx.get(f"{console_mesh.url}/api/v1/budgets", headers=bearer(key))
    budget = next(b for b in r.json()["budgets"] if b["name"] == "acme")
    assert whole["promptCacheSavingsUsd"] > 0 and whole["responseCacheSavingsUsd"] > 0
    _open(page, console_mesh, key, "usage")
    page.wait_for_selector(f"[data-testid=total-cost]:has-text('{_usd(whole['costUsd'])}')")
    # the two savings apart, as the ledger sums them
    for testid, field in (
        ("total-prompt-savings", "promptCacheSavingsUsd"),
        ("total-response-savings", "responseCacheSavingsUsd"),
    ):
        assert page.text_content(f"[data-testid={testid}]") == _usd(whole[field])
    # the tenant's budget: what is left of its $5 a day, after this call's cost
    left = f"{_usd(budget['remainingTodayUsd'])} of $5.0000 left"
    page.wait_for_selector(f"[data-budget='tenant:acme']:has-text('{left}')")
    by_model = page.locator("[data-testid=by-model] tr[data-group='openai/gpt-4o-mini']")
    assert (by_model.locator("[data-testid=cost]").text_content() or "").startswith("$")
    assert page.locator("[data-testid=by-tenant] tbody tr").count() == 1  # acme's own only
    page.screenshot(path=str(SCREENSHOTS / "usage.png"), full_page=True)


@pytest.fixture(scope="module")
def open_mesh() -> Iterator[Mesh]:
    """A mesh without API keys (a loopback mesh: every view sees everything). Template
    calls need it: with keys, the orchestrator would need its own key for the processor.
    Its batches retry a failed item at once, twice at most."""
    batch = BatchConfig(max_attempts=2, retry_backoff=0.0, poll_interval=0.1)
    mesh = Mesh().start({"batch": batch})
    try:
        yield mesh
    finally:
        mesh.stop()


def _template_call(mesh: Mesh, template: str) -> str:
    body = {
        "model": "openai/gpt-4o-mini",
        "messages": [],
        "template": template,
        "template_variables": {"product": "the router"},
    }
    r = httpx.post(f"{mesh.gateway_url}/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.headers["x-request-id"]


def test_the_templates_view_shows_versions_weights_and_their_calls(
    open_mesh: Mesh, page: Page
) -> None:
    url = f"{open_mesh.gateway_url}/api/v1/templates"
    for n, text in ((1, "How do I reset {{ product }}?"), (2, "Reset {{ product }}, briefly.")):
        version = {
            "name": "support",
            "description": f"take {n}",
            "variables": [{"name": "product", "required": True}],
            "system": "You are a support agent.",
            "messages": [{"role": "ROLE_USER", "content": text}],
        }
        r = httpx.post(url, json={"template": version})
        assert r.status_code == 200, r.text
    weights = {"weights": [{"version": 1, "weight": 1}, {"version": 2, "weight": 3}]}
    r = httpx.put(f"{url}/support/weights", json=weights)
    assert r.status_code == 200, r.text
    made = {_template_call(open_mesh, f"support@{v}") for v in (1, 1, 2)}

    def counted() -> bool:
        r = httpx.get(f"{url}/support/stats")
        return sum(int(v.get("calls", 0)) for v in r.json().get("versions", [])) >= len(made)

    wait_for(counted, "the template's calls in the ledger")

    page.goto(f"{open_mesh.gateway_url}/console#templates")
    row = page.locator("[data-testid=templates] tr[data-template='support']")
    row.wait_for()
    assert "v2" in (row.text_content() or "") and "v1: 1, v2: 3" in (row.text_content() or "")
    row.click()
    page.wait_for_selector("[data-testid=template-name]:has-text('support')")
    versions = page.locator("[data-testid=versions] tr")
    assert [versions.nth(i).get_attribute("data-version") for i in range(2)] == ["2", "1"]
    v1 = page.locator("[data-testid=versions] tr[data-version='1']")
    v2 = page.locator("[data-testid=versions] tr[data-version='2']")
    cells = [
        (v.locator("[data-testid=version-calls]"), v.locator("[data-testid=share]"))
        for v in (v1, v2)
    ]
    assert [(c.text_content(), s.text_content()) for c, s in cells] == [
        ("2", "25 %"),
        ("1", "75 %"),
    ]
    assert (v1.locator("[data-testid=version-cost]").text_content() or "").startswith("$")
    content = page.locator("[data-testid=template-content]")
    assert "Reset {{ product }}, briefly." in (content.text_content() or "")  # the latest
    page.screenshot(path=str(SCREENSHOTS / "templates.png"), full_page=True)
    v1.click()  # a version's own text
    page.wait_for_selector("[data-testid=template-content]:has-text('How do I reset')")


def test_a_tenant_key_cannot_see_another_tenants_calls(
    console_mesh: ConsoleMesh, page: Page
) -> None:
    theirs = _chat(console_mesh, console_mesh.keys.globex).json()["requestId"]
    mine = _chat(console_mesh, console_mesh.keys.acme).json()["requestId"]
    _call(console_mesh, console_mesh.keys.admin, theirs)
    _open(page, console_mesh, console_mesh.keys.acme, "mesh")
    page.wait_for_selector(f"tr[data-request-id='{mine}']")
    tenants = page.locator("[data-testid=calls] [data-testid=call-tenant]").all_text_contents()
    assert tenants and set(tenants) == {"acme"}
    assert page.locator(f"tr[data-request-id='{theirs}']").count() == 0
    # the same view with the admin key does list it
    page.fill("#key-input", console_mesh.keys.admin)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector(f"tr[data-request-id='{theirs}']")


def test_the_first_load_is_small_and_stays_on_the_gateway(
    console_mesh: ConsoleMesh, page: Page
) -> None:
    loaded: list[Response] = []
    page.on("response", lambda response: loaded.append(response))
    _open(page, console_mesh, console_mesh.keys.acme, "playground")
    page.wait_for_selector("[data-testid=model] option", state="attached")
    files = [r for r in loaded if "/console" in r.url]
    assert {r.url.rsplit("/", 1)[-1] for r in files} >= {
        "console",
        "app.js",
        "console.css",
        "playground.js",
        "mesh.js",
        "usage.js",
        "templates.js",
        "batches.js",
    }
    assert all(r.url.startswith(console_mesh.url) for r in loaded)  # nothing from elsewhere
    compressed = sum(len(gzip.compress(r.body())) for r in files)
    assert compressed < BUDGET_BYTES


def test_without_a_key_the_views_ask_for_one(console_mesh: ConsoleMesh, page: Page) -> None:
    page.goto(f"{console_mesh.url}/console#mesh")
    page.wait_for_selector("[data-testid=mesh-state]:has-text('Enter an API key')")
    assert "UNAUTHENTICATED" in (page.text_content("[data-testid=mesh-state]") or "")
    assert page.text_content("[data-testid=key-state]") == "no key"
    # entering one (kept in session storage, never in the URL) starts the live view
    page.fill("#key-input", console_mesh.keys.acme)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("[data-testid=mesh-state]:has-text('live')")
    assert console_mesh.keys.acme not in page.url
    stored = page.evaluate("() => sessionStorage.getItem('llmesh.console.key')")
    assert stored == console_mesh.keys.acme


DOOMED = "echo-doomed-console"
"""An emulator model whose every call fails upstream: its batch items become dead letters."""


def _batch(mesh: Mesh) -> str:
    """A batch of two good items and one doomed one, run through the mesh; its id."""

    def item(custom_id: str, model: str) -> batches_pb2.BatchItem:
        chat = chat_pb2.ChatInput(
            model=model, messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content="hi")]
        )
        return batches_pb2.BatchItem(custom_id=custom_id, chat=chat)

    items = [item("one", "emulator/echo"), item("two", "emulator/echo")]
    items.append(item("doomed", f"emulator/{DOOMED}"))
    with grpc.insecure_channel(mesh.orchestrator_address) as channel:
        stub = batches_pb2_grpc.BatchServiceStub(channel)
        request = batches_pb2.CreateBatchRequest(items=items, mode=batches_pb2.BATCH_MODE_MESH)
        created = stub.CreateBatch(request, timeout=30)
    batch_id: str = created.batch.id
    return batch_id


def test_the_batches_view_shows_progress_and_a_batchs_dead_letters(
    open_mesh: Mesh, page: Page
) -> None:
    open_mesh.set_fault(DOOMED, "server_error")
    try:
        batch_id = _batch(open_mesh)

        def ended() -> dict[str, Any] | None:
            r = httpx.get(f"{open_mesh.gateway_url}/api/v1/batches/{batch_id}")
            assert r.status_code == 200, r.text
            batch: dict[str, Any] = r.json()["batch"]
            return batch if batch["state"] == "BATCH_STATE_COMPLETED" else None

        batch = wait_for(ended, "the batch to complete", timeout=60)
    finally:
        httpx.delete(f"{open_mesh.emulator_url}/emulator/faults", params={"model": DOOMED})
    assert batch["counts"] == {"total": 3, "completed": 2, "dead": 1}
    page.goto(f"{open_mesh.gateway_url}/console#batches")
    row = page.locator(f"[data-testid=batches] tr[data-batch='{batch_id}']")
    row.wait_for()
    assert row.locator("[data-testid=batch-state]").text_content() == "completed"
    assert row.locator("[data-testid=batch-progress]").text_content() == " 3 / 3"
    assert row.locator("[data-testid=batch-counts]").text_content() == "2 completed · 1 dead"
    row.click()
    letter = page.locator("[data-testid=dead-letters] tr[data-custom-id='doomed']")
    letter.wait_for()
    assert page.locator("[data-testid=dead-letters] tr").count() == 1
    error = letter.locator("[data-testid=dead-error]").text_content() or ""
    assert error.startswith("upstream-")  # the emulator's server error, as its reason
    assert letter.locator("ol.trail li").count() == 2  # batch.max_attempts
    page.screenshot(path=str(SCREENSHOTS / "batches.png"), full_page=True)
