"""A route's processor steps in the call path: the processor client and the restoring stream."""

from llmesh.services.orchestrator.steps.client import Prepared, ProcessorClient

__all__ = ["Prepared", "ProcessorClient"]
