"""The orchestrator: routes chat calls to LLM providers and streams their replies."""

from llmesh.services.core.call import ChatCall
from llmesh.services.core.events import Completed, Started
from llmesh.services.orchestrator.engine import Orchestrator
from llmesh.services.orchestrator.server import OrchestratorServer, build_engine, run, serve

__all__ = [
    "ChatCall",
    "Completed",
    "Orchestrator",
    "OrchestratorServer",
    "Started",
    "build_engine",
    "run",
    "serve",
]
