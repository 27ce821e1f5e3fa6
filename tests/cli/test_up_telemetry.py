"""Metrics, call logs and readiness of the mesh as a user starts it (`llmesh up`).

One mesh with metrics on, API keys and known upstream keys; a workload of a success, a
failure, a fallback, a mid-stream switch, a response-cache hit, a prompt-cache read, an
embeddings call and a rate-limit refusal; then ``/metrics`` of the gateway, orchestrator and
processor are scraped and parsed with `prometheus_client`'s parser, the Grafana dashboard's
queries are checked against the scrapes, and the captured logs are searched for the keys
and prompts used.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.ports import free_port
from llmesh.services.auth import open_key_store

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
UPSTREAM_OPENAI_KEY = "sk-upstream-openai-7f3a9c1e5b2d"
UPSTREAM_ANTHROPIC_KEY = "sk-ant-upstream-4d8e2a6c0f1b"
PROMPT = "the-private-prompt-5c9e1a"
LONG_SYSTEM = " ".join(f"rule{i} is private-system-text" for i in range(400))


CONFIG = """
aliases: {fast: emulator/echo}
routes:
  pair: {targets: [openai/gpt-4o-mini, anthropic/claude-haiku-4-5]}
  switching:
    targets: [openai/gpt-4.1-mini, anthropic/claude-haiku-4-5]
    mid_stream_policy: continue  # /v1 cannot show a restart
resilience:
  breaker: {fail_max: 1000}
  retry: {max_attempts: 2, initial_backoff: 0.01, max_backoff: 0.02, jitter: 0.0}
  queue: {max_concurrency: 16}
cache:
  response: {enabled: true}
rate_limits:
  tenants: {limited: {requests_per_minute: 1}}
telemetry:
  metrics:
    enabled: true
    orchestrator_port: %(orch_metrics)d
    processor_port: %(proc_metrics)d
    tenants: [acme]
"""


class Up:
    """A running `llmesh up`, its addresses, keys and the lines it has printed."""

    def __init__(self, proc: subprocess.Popen[str], info: dict[str, Any]) -> None:
        self.proc = proc
        self.info = info
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=30)
        self._reader.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.output()


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    tmp = tmp_path_factory.mktemp("telemetry-up")
    ports = {n: free_port() for n in ("orch", "proc", "gw", "emu", "orch_metrics", "proc_metrics")}
    db = f"sqlite:///{tmp}/llmesh.db"

    async def keys() -> tuple[str, str]:
        store = await open_key_store(db)
        try:
            (_, acme), (_, limited) = await store.create("acme"), await store.create("limited")
        finally:
            await store.aclose()
        return acme, limited

    acme_key, limited_key = asyncio.run(keys())
    (tmp / "llmesh.yaml").write_text(CONFIG % ports)
    emulator = f"http://127.0.0.1:{ports['emu']}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLMESH_"))}
    env |= {
        "LLMESH_ORCHESTRATOR_ADDRESS": f"127.0.0.1:{ports['orch']}",
        "LLMESH_PROCESSOR_ADDRESS": f"127.0.0.1:{ports['proc']}",
        "LLMESH_GATEWAY_PORT": str(ports["gw"]),
        "LLMESH_EMULATOR_PORT": str(ports["emu"]),
        "LLMESH_CONFIG": str(tmp / "llmesh.yaml"),
        "LLMESH_DATABASE_URL": db,
        "LLMESH_LOG_LEVEL": "DEBUG",  # everything any service logs is searched for secrets
        "LLMESH_CALL_LOG": "true",
        "OPENAI_BASE_URL": f"{emulator}/v1",
        "OPENAI_API_KEY": UPSTREAM_OPENAI_KEY,
        "ANTHROPIC_BASE_URL": emulator,
        "ANTHROPIC_API_KEY": UPSTREAM_ANTHROPIC_KEY,
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [str(BIN / "llmesh"), "up", "--workers", "1"],  # one process: its counts are the totals
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    mesh = Up(
        proc,
        {
            "gw": f"http://127.0.0.1:{ports['gw']}",
            "emu": emulator,
            "orch_metrics": f"http://127.0.0.1:{ports['orch_metrics']}/metrics",
            "proc_metrics": f"http://127.0.0.1:{ports['proc_metrics']}/metrics",
            "acme": acme_key,
            "limited": limited_key,
        },
    )
    deadline = time.monotonic() + 60
    while "mesh is up" not in mesh.output():
        if proc.poll() is not None or time.monotonic() > deadline:
            mesh.stop()
            pytest.fail("llmesh up did not come up:\n" + mesh.output())
        time.sleep(0.05)
    try:
        yield mesh
    finally:
        mesh.stop()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """Every sample at `url` by (sample name, labels), parsed by prometheus_client."""
    r = httpx.get(url, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples carrying `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def _client(up: Up, key: str = "acme") -> openai.OpenAI:
    return openai.OpenAI(base_url=up.info["gw"] + "/v1", api_key=up.info[key], max_retries=0)


def _fault(up: Up, model: str, fault: str, **params: Any) -> None:
    r = httpx.post(
        f"{up.info['emu']}/emulator/faults", json={"model": model, "fault": fault, **params}
    )
    r.raise_for_status()


def _ask(client: openai.OpenAI, model: str, text: str, **kw: Any) -> str:
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], **kw
    )
    return reply.choices[0].message.content or ""


def test_counters_move_as_calls_succeed_fail_and_fall_back(up: Up) -> None:
    orch = up.info["orch_metrics"]
    client = _client(up)
    before = scrape(orch)
    assert _ask(client, "fast", f"{PROMPT} one two three four") == f"{PROMPT} one two three four"
    after_ok = scrape(orch)
    ok = {"llmesh_outcome": "ok", "llmesh_target": "emulator/echo", "llmesh_tenant": "acme"}
    assert (
        value(after_ok, "llmesh_calls_total", **ok) == value(before, "llmesh_calls_total", **ok) + 1
    )
    assert value(after_ok, "gen_ai_server_time_to_first_token_seconds_count") >= 1

    _fault(up, "gpt-4o", "auth")  # this model is used by this call only
    with pytest.raises(openai.APIStatusError):
        _ask(client, "openai/gpt-4o", f"{PROMPT} fails")
    failed = scrape(orch)
    reasons = {
        dict(ls)["llmesh_reason"]
        for (n, ls), v in failed.items()
        if n == "llmesh_calls_total" and dict(ls)["llmesh_outcome"] == "error" and v > 0
    }
    assert reasons == {"UPSTREAM_AUTH_FAILED"}

    _fault(up, "gpt-4o-mini", "server_error", times=2)  # the first try and its retry
    assert _ask(client, "pair", f"{PROMPT} falls back") == f"{PROMPT} falls back"
    fell = scrape(orch)
    moved = {"llmesh_target": "anthropic/claude-haiku-4-5", "llmesh_reason": "UPSTREAM_UNAVAILABLE"}
    assert value(fell, "llmesh_fallbacks_total", **moved) == 1, sorted(
        k for k in fell if k[0] == "llmesh_fallbacks_total"
    )
    assert value(fell, "llmesh_retries_total", llmesh_target="openai/gpt-4o-mini") == 1
    assert value(fell, "llmesh_cost_usd_total", llmesh_tenant="acme") > 0

    gateway = scrape(up.info["gw"] + "/metrics")
    route = {"http_route": "/v1/chat/completions"}
    assert value(gateway, "http_server_request_duration_seconds_count", **route) >= 3
    statuses = {
        dict(ls)["http_response_status_code"]
        for (n, ls), _ in gateway.items()
        if n == "http_server_request_duration_seconds_count"
    }
    assert statuses == {"200", "502"}, statuses


def test_switches_cache_hits_prompt_cache_and_refusals_are_counted(up: Up) -> None:
    orch = up.info["orch_metrics"]
    client = _client(up)
    _fault(up, "gpt-4.1-mini", "stream_error", times=1)
    with client.chat.completions.create(
        model="switching",
        messages=[{"role": "user", "content": f"{PROMPT} a b c d e f g h"}],
        stream=True,
    ) as stream:
        list(stream)
    for _ in range(2):  # the second is answered from the response cache
        _ask(client, "fast", f"{PROMPT} cached", temperature=0)
    for question in ("first", "second"):  # the second reads the first's cached prefix
        client.chat.completions.create(
            model="openai/gpt-4o-mini",
            messages=[
                {"role": "system", "content": LONG_SYSTEM},
                {"role": "user", "content": question},
            ],
            temperature=0.7,
        )
    client.embeddings.create(model="openai/text-embedding-3-small", input="embed me")
    limited = _client(up, "limited")
    _ask(limited, "fast", "once")
    with pytest.raises(openai.RateLimitError):
        _ask(limited, "fast", "twice")
    s = scrape(orch)
    assert value(s, "llmesh_mid_stream_switches_total") == 1
    assert value(s, "llmesh_response_cache_hits_total", llmesh_tenant="acme") == 1
    assert value(s, "llmesh_prompt_cache_tokens_total", llmesh_op="read") > 0
    refused = {"llmesh_reason": "RATE_LIMIT_EXCEEDED", "llmesh_tenant": "limited"}
    assert value(s, "llmesh_rejections_total", **refused) == 1
    assert value(s, "llmesh_breaker_state", llmesh_breaker_state="closed") >= 1
    assert ("llmesh_queue_depth", frozenset({("llmesh_target", "emulator/echo")})) in s
    embedded = {"gen_ai_operation_name": "embeddings"}
    assert value(s, "llmesh_calls_total", llmesh_outcome="ok", **embedded) == 1
    tokens = "gen_ai_client_token_usage_count"
    assert value(s, tokens, gen_ai_token_type="input", **embedded) == 1
    assert value(s, tokens, gen_ai_token_type="output", **embedded) == 0  # none produced


def test_the_processor_serves_its_metrics_and_the_gateway_its_readiness(up: Up) -> None:
    s = scrape(up.info["proc_metrics"])
    assert value(s, "process_resident_memory_bytes") > 0
    r = httpx.get(up.info["gw"] + "/readyz")
    assert (r.status_code, r.json()) == (
        200,
        {"status": "SERVING", "orchestrator": "SERVING", "processor": "SERVING"},
    )
    assert httpx.get(up.info["gw"] + "/healthz").status_code == 200
    assert httpx.get(up.info["orch_metrics"].replace("/metrics", "/other")).status_code == 404


def _without_labels(target: dict[str, str]) -> str:
    """A panel query with its label matchers and ``by (...)`` groupings taken out."""
    return re.sub(r"\{[^}]*\}", "", re.sub(r"\bby \([^)]*\)", "", target["expr"]))


def test_every_metric_the_dashboard_queries_is_exported(up: Up) -> None:
    # runs after the workloads above (file order), so every instrument has been recorded
    names = {
        n
        for url in (up.info["orch_metrics"], up.info["proc_metrics"], up.info["gw"] + "/metrics")
        for n, _ in scrape(url)
    }
    dashboard = json.loads((ROOT / "deploy/grafana/llmesh.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b((?:llmesh|gen_ai|http)_[a-z_]+)\b", _without_labels(target))
    }
    assert len(queried) >= 20
    assert queried - names == set()


def test_call_logs_are_json_lines_without_keys_or_prompts(up: Up) -> None:
    _ask(_client(up), "fast", f"{PROMPT} logged")
    out = up.stop()  # every service flushes its logs as it stops
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    calls = [r for r in records if r.get("logger") == "llmesh.calls"]
    assert calls, out[-3000:]
    for field in ("request_id", "tenant", "key_id", "model", "target", "outcome", "latency_ms"):
        assert all(field in r for r in calls), field
    assert {r["outcome"] for r in calls} >= {"ok", "error"}
    assert any(r["reason"] == "RATE_LIMIT_EXCEEDED" for r in calls)
    secrets = (
        up.info["acme"],
        up.info["limited"],
        UPSTREAM_OPENAI_KEY,
        UPSTREAM_ANTHROPIC_KEY,
        PROMPT,
        "private-system-text",
        "Bearer ",
    )
    for secret in secrets:
        assert secret not in out, secret
