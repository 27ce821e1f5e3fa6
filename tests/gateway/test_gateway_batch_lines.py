"""The result lines of items a batch's cancel stopped: Anthropic's ``canceled`` result and
OpenAI's error file line with ``batch_cancelled`` (what both providers write)."""

from __future__ import annotations

import anthropic
import openai
import orjson

from llmesh.gateway.batches.anthropic_batches import result_line
from llmesh.gateway.batches.openai_lines import error_line, output_line
from llmesh.v1 import batches_pb2

CANCELLED = batches_pb2.BatchItemResult(
    custom_id="late", state=batches_pb2.BATCH_ITEM_STATE_CANCELLED, attempts=0
)


def test_anthropic_results_carry_canceled() -> None:
    line = orjson.loads(result_line(CANCELLED))
    assert line == {"custom_id": "late", "result": {"type": "canceled"}}
    parsed = anthropic.types.messages.MessageBatchIndividualResponse.model_validate(line)
    assert parsed.result.type == "canceled"


def test_openai_error_file_lists_the_item_as_batch_cancelled() -> None:
    assert output_line("batch_1", CANCELLED) is None
    raw = error_line("batch_1", CANCELLED)
    assert raw is not None and raw.endswith(b"\n")
    line = orjson.loads(raw)
    assert line["custom_id"] == "late"
    assert line["id"].startswith("batch_req_")
    assert line["response"] is None
    assert line["error"]["code"] == "batch_cancelled"
    assert "cancelled" in line["error"]["message"]
    assert openai.types.BatchError.model_validate(line["error"]).code == "batch_cancelled"


def test_a_failed_item_is_not_mistaken_for_a_cancelled_one() -> None:
    failed = batches_pb2.BatchItemResult(
        custom_id="bad", state=batches_pb2.BATCH_ITEM_STATE_FAILED, attempts=1
    )
    failed.error.message = "refused"
    line = orjson.loads(error_line("batch_1", failed) or b"null")
    assert line["response"]["status_code"] >= 400
    assert orjson.loads(result_line(failed))["result"]["type"] == "errored"
