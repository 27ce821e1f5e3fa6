"""The attempt trail's one JSON serializer: the ledger's entries and the trailer's."""

from __future__ import annotations

import orjson

from llmesh.services.common.errors import Reason
from llmesh.services.core.target import Target
from llmesh.services.core.trail import AttemptRecord, Outcome, attempt_json
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.replies_convert import attempts_to_json


def _failed() -> AttemptRecord:
    a = AttemptRecord(Target("anthropic", "claude-haiku-4-5"), started=10.0, retry=True)
    a.ttft = 0.25
    a.finish(Outcome.FAILED, 11.5, Reason.STREAM_INTERRUPTED)
    return a


def test_ledger_entry_has_every_flag_and_the_billed_usage() -> None:
    usage = Usage(input_tokens=5, output_tokens=7, cache_read_tokens=3, estimated=True)
    assert attempt_json(_failed(), usage) == {
        "target": "anthropic/claude-haiku-4-5",
        "outcome": "failed",
        "latency_ms": 1500.0,
        "hedged": False,
        "retry": True,
        "reason": "STREAM_INTERRUPTED",
        "ttft_ms": 250.0,
        "usage": usage.to_json(),
    }
    skipped = AttemptRecord(Target("openai", "gpt-4o"), started=1.0)
    skipped.finish(Outcome.SKIPPED, 1.0, Reason.CIRCUIT_OPEN)
    assert attempt_json(skipped) == {
        "target": "openai/gpt-4o",
        "outcome": "skipped",
        "latency_ms": 0.0,
        "hedged": False,
        "retry": False,
        "reason": "CIRCUIT_OPEN",
    }


def test_trailer_is_the_brief_form() -> None:
    ok = AttemptRecord(Target("openai", "gpt-4o"), started=1.0)
    ok.finish(Outcome.SUCCEEDED, 1.002)
    assert orjson.loads(attempts_to_json([_failed(), ok])) == [
        {
            "target": "anthropic/claude-haiku-4-5",
            "outcome": "failed",
            "reason": "STREAM_INTERRUPTED",
            "latency_ms": 1500.0,
            "ttft_ms": 250.0,
            "retry": True,
        },
        {"target": "openai/gpt-4o", "outcome": "succeeded", "latency_ms": 2.0},
    ]
