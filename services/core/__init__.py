"""The domain floor: plain data every service shares (dataclasses and enums, no I/O).

Nothing here imports grpc, HTTP or storage code, so the orchestrator, the ledger and the
error model can all depend on it.
"""

from llmesh.services.core.caller import Caller
from llmesh.services.core.ids import new_request_id
from llmesh.services.core.usage import CallStatus, Usage

__all__ = ["CallStatus", "Caller", "Usage", "new_request_id"]
