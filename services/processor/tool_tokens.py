"""The tokens of tool definitions offered to a model, for CountTokens.

A tool costs the tokens of its name, its description and its JSON schema (compact JSON,
keys sorted, as protobuf keeps no key order) with the model's tokenizer, plus
`TOKENS_PER_TOOL` framing tokens; a request offering any tools adds `TOOLS_FRAMING` once.
The framing follows the function-counting figures of OpenAI's "How to count tokens with
tiktoken" cookbook (7 per function, 12 to close the list). Providers wrap tools in prompts
of their own (Anthropic's tool-use system prompt) that no public tokenizer reproduces, so
the count is close, not exact, whatever the tokenizer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from llmesh.services.core.chat import Tool
from llmesh.services.processor.tokenizers import TokenCounter

__all__ = ["TOKENS_PER_TOOL", "TOOLS_FRAMING", "tool_texts", "tools_tokens"]

TOKENS_PER_TOOL = 7
"""Framing tokens around every tool definition."""
TOOLS_FRAMING = 12
"""Framing tokens of the tool list, once per request that offers tools."""


def tool_texts(tool: Tool) -> tuple[str, str, str]:
    """The texts a tool is counted by: name, description and JSON schema."""
    schema = json.dumps(tool.parameters, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return tool.name, tool.description, schema if tool.parameters else ""


async def tools_tokens(counter: TokenCounter, tools: Sequence[Tool]) -> int:
    """The tokens of `tools` (0 for none), yielding to the event loop on long schemas."""
    if not tools:
        return 0
    total = TOOLS_FRAMING
    for tool in tools:
        total += TOKENS_PER_TOOL
        for text in tool_texts(tool):
            total += await counter.count_text(text)
    return total
