"""The orchestrator: routes chat calls to LLM providers and streams their replies."""

from services.core.call import ChatCall
from services.core.events import Completed, Started
from services.orchestrator.engine import Orchestrator
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
