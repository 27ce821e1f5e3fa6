"""Pieces shared by every llmesh service: errors, configuration, gRPC bootstrap."""

from llmesh.services.common.errors import ERROR_TABLE, LlmeshError, Reason, ReasonSpec

__all__ = ["ERROR_TABLE", "LlmeshError", "Reason", "ReasonSpec"]
