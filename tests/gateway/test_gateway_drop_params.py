"""A deployment may list /v1 fields (``gateway.drop_params``) to accept and drop instead of
refusing: the reply names them in ``x-llmesh-dropped-params``, and nothing else changes."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import httpx
import pytest

from llmesh.gateway import GatewaySettings
from llmesh.gateway.openai_compat import parse_completion_request
from llmesh.gateway.openai_fields import check_fields
from llmesh.services.common.config import Config
from llmesh.services.common.errors import LlmeshError
from tests.gateway.fakes import FakeMesh

HI = [{"role": "user", "content": "hi"}]
DROP = frozenset({"store", "x_vendor_hint", "temperature"})


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "fake/text", "messages": HI, **fields}


def test_listed_fields_are_dropped_and_named_in_body_order() -> None:
    dropped = check_fields(body(x_vendor_hint="a", store=True), DROP)
    assert dropped == ("x_vendor_hint", "store")


def test_fields_not_listed_are_still_refused_naming_only_them() -> None:
    with pytest.raises(LlmeshError) as raised:
        check_fields(body(x_vendor_hint="a", verbosity="low", other=1), DROP)
    assert [v.field for v in raised.value.violations] == ["verbosity", "other"]


def test_honoured_fields_and_no_op_values_are_never_dropped() -> None:
    parsed = parse_completion_request(body(temperature=0.5, store=False), DROP)
    assert parsed.dropped == ()
    assert parsed.input.temperature == pytest.approx(0.5)


def test_nothing_is_dropped_by_default() -> None:
    assert GatewaySettings().drop_params == frozenset()
    with pytest.raises(LlmeshError):
        parse_completion_request(body(store=True))


@pytest.fixture
def gateway_settings(fake_mesh: FakeMesh) -> GatewaySettings:
    """The gateway over the fake mesh, dropping `DROP`."""
    return GatewaySettings(
        orchestrator_address=fake_mesh.address,
        processor_address=fake_mesh.address,
        shutdown_grace=5,
        drop_params=DROP,
    )


@pytest.mark.parametrize("stream", [False, True])
async def test_the_reply_names_the_dropped_fields(
    http: httpx.AsyncClient, fake_mesh: FakeMesh, stream: bool, caplog: pytest.LogCaptureFixture
) -> None:
    sent = body(store=True, x_vendor_hint={"k": 1}, stream=stream)
    with caplog.at_level(logging.DEBUG, logger="llmesh.gateway"):
        r = await http.post("/v1/chat/completions", json=sent)
    assert r.status_code == 200
    assert r.headers["x-llmesh-dropped-params"] == "store, x_vendor_hint"
    dropped_logs = [rec for rec in caplog.records if "dropped" in rec.getMessage()]
    assert len(dropped_logs) == 1 and dropped_logs[0].levelno == logging.DEBUG
    assert "store, x_vendor_hint" in dropped_logs[0].getMessage()
    chat = fake_mesh.orchestrator.calls[-1].input
    assert chat.model == "fake/text"


async def test_a_reply_without_dropped_fields_has_no_header(http: httpx.AsyncClient) -> None:
    r = await http.post("/v1/chat/completions", json=body(store=False))
    assert r.status_code == 200
    assert "x-llmesh-dropped-params" not in r.headers


async def test_an_upstream_error_still_names_the_dropped_fields(
    http: httpx.AsyncClient,
) -> None:
    sent = {**body(x_vendor_hint=1), "model": "fake/rate-limited"}
    r = await http.post("/v1/chat/completions", json=sent)
    assert r.status_code == 429
    assert r.headers["x-llmesh-dropped-params"] == "x_vendor_hint"


def test_settings_come_from_the_config() -> None:
    config = dataclasses.replace(Config(), gateway_drop_params=("a", "b"))
    assert GatewaySettings.from_config(config).drop_params == frozenset({"a", "b"})
