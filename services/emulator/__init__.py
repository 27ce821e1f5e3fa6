"""The built-in emulator: OpenAI Chat Completions and Anthropic Messages, served locally.

Deterministic replies (an echo of the last user message, tool calls when a tool is named),
faithful wire formats for the official SDKs, simulated prompt caching, latency profiles and
fault injection. See ``services/emulator/README.md``.
"""

from llmesh.services.emulator.app import create_app, run, start
from llmesh.services.emulator.settings import FAULT_NAMES, EmulatorSettings, FaultSpec, Latency

__all__ = [
    "FAULT_NAMES",
    "EmulatorSettings",
    "FaultSpec",
    "Latency",
    "create_app",
    "run",
    "start",
]
