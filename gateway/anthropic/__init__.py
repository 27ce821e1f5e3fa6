"""The Anthropic Messages API on the gateway: requests translated into `ChatInput`, replies
and stream events rendered in Anthropic's shapes, errors in Anthropic's error shape."""

from llmesh.gateway.anthropic.errors import error_response
from llmesh.gateway.anthropic.routes import (
    VERSION_HEADER,
    auth_headers,
    model_list,
    model_object,
    routes,
)

__all__ = [
    "VERSION_HEADER",
    "auth_headers",
    "error_response",
    "model_list",
    "model_object",
    "routes",
]
