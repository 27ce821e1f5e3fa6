"""The one usage estimator."""

from __future__ import annotations

from llmesh.services.core.chat import ChatRequest, Message, Role, ToolCall
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.estimate import estimate_input_tokens, estimate_usage
from llmesh.services.orchestrator.layers.admission import rough_input_tokens


def test_text_tool_calls_framing_and_priming_are_counted() -> None:
    request = ChatRequest(
        (
            Message(Role.USER, "x" * 10),
            Message(Role.ASSISTANT, "", tool_calls=(ToolCall("c1", "abcd", "y" * 8),)),
        ),
    )
    # ceil((10 + 4 + 8) / 4) = 6 characters' tokens, 3 a message, 3 priming the reply
    assert estimate_input_tokens(request) == 6 + 2 * 3 + 3
    assert estimate_usage(request, 9) == Usage(15, 3, estimated=True)
    assert rough_input_tokens("any/model", request) == 15  # rate limits count the same
