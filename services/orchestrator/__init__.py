"""The orchestrator: routes chat calls to LLM providers and streams their replies."""

from services.orchestrator.engine import ChatCall, Completed, Orchestrator, Started
from services.orchestrator.server import OrchestratorServer, build_engine, run, serve

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
