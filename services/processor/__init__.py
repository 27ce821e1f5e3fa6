"""The processor: token counting per model family and trimming conversations to a budget."""

from llmesh.services.core.chat import Message, Role, ToolCall
from llmesh.services.processor.fit import FitResult, MessageCounter, fit_context, fit_counted
from llmesh.services.processor.server import SERVICE_NAME, ProcessorServer, run, serve
from llmesh.services.processor.servicer import ProcessorServicer
from llmesh.services.processor.tokenizers import (
    ESTIMATE,
    TokenCounter,
    Tokenizers,
    encoding_for_model,
)

__all__ = [
    "ESTIMATE",
    "SERVICE_NAME",
    "FitResult",
    "Message",
    "MessageCounter",
    "ProcessorServer",
    "ProcessorServicer",
    "Role",
    "TokenCounter",
    "Tokenizers",
    "ToolCall",
    "encoding_for_model",
    "fit_context",
    "fit_counted",
    "run",
    "serve",
]
