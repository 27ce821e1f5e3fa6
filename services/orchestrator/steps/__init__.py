"""A route's processor steps in the call path: the processor client and the steps' observer."""

from llmesh.services.orchestrator.steps.client import Prepared, ProcessorClient
from llmesh.services.orchestrator.steps.observe import StepObserver

__all__ = ["Prepared", "ProcessorClient", "StepObserver"]
