"""Redaction: detectors, the per-call redaction, and restoring pseudonyms in a stream.

The pure text work (detectors, `Redactor`, `Restorer`) lives in
`llmesh.services.common.redaction`, shared with the orchestrator, which applies the reply's
post-call steps in its own stream; conversations are redacted here.
"""

from llmesh.services.common.redaction import (
    BUILTIN,
    PLACEHOLDER,
    Detector,
    Finding,
    Redaction,
    Redactor,
    Restorer,
    describe,
    json_escaped,
)
from llmesh.services.processor.redact.messages import redact_messages

__all__ = [
    "BUILTIN",
    "PLACEHOLDER",
    "Detector",
    "Finding",
    "Redaction",
    "Redactor",
    "Restorer",
    "describe",
    "json_escaped",
    "redact_messages",
]
