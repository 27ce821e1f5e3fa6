"""Redaction: detectors, the per-call redaction, and restoring pseudonyms in a stream."""

from llmesh.services.processor.redact.detectors import BUILTIN, Detector, Finding
from llmesh.services.processor.redact.messages import redact_messages
from llmesh.services.processor.redact.redactor import Redaction, Redactor, describe
from llmesh.services.processor.redact.restore import Restorer, json_escaped

__all__ = [
    "BUILTIN",
    "Detector",
    "Finding",
    "Redaction",
    "Redactor",
    "Restorer",
    "describe",
    "json_escaped",
    "redact_messages",
]
