"""Finding sensitive values in text: the detectors, a call's redaction, restoring
pseudonyms and masking a reply streamed in pieces.

Pure text work shared by the processor (pre-call steps, its direct RPCs) and the
orchestrator (post-call steps in its stream), so neither imports the other.
"""

from llmesh.services.common.redaction.detectors import BUILTIN, Detector, Finding
from llmesh.services.common.redaction.masking import OutputMasker, StreamDetectors
from llmesh.services.common.redaction.redactor import Redaction, Redactor, describe
from llmesh.services.common.redaction.restore import PLACEHOLDER, Restorer, json_escaped

__all__ = [
    "BUILTIN",
    "PLACEHOLDER",
    "Detector",
    "Finding",
    "OutputMasker",
    "Redaction",
    "Redactor",
    "Restorer",
    "StreamDetectors",
    "describe",
    "json_escaped",
]
