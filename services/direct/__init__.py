"""The direct HTTP path: the gateway's routes served from the orchestrator's own process.

The gateway app runs unchanged on `DirectStub`, an in-process stand-in for its gRPC stub
that calls the orchestrator's servicer, so the OpenAI-compatible API (and every other route)
answers with no gRPC hop. `serve_direct` starts it beside a running orchestrator.
"""

from llmesh.services.direct.server import DirectServer, direct_upstream, serve_direct
from llmesh.services.direct.stub import DirectContext, DirectStub

__all__ = ["DirectContext", "DirectServer", "DirectStub", "direct_upstream", "serve_direct"]
