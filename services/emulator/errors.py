"""The emulator's error value, rendered by each API in its own body shape."""

from __future__ import annotations

import uuid
from collections.abc import Mapping


class ApiError(Exception):
    """An error reply: HTTP status plus the fields both providers' error bodies draw from.

    OpenAI renders ``{"error": {"message", "type", "param", "code"}}``; Anthropic renders
    ``{"type": "error", "error": {"type", "message"}, "request_id"}`` and ignores `param`
    and `code`.
    """

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers: Mapping[str, str] = headers or {}


def new_request_id() -> str:
    """A fresh request id in the providers' ``req_...`` style."""
    return "req_" + uuid.uuid4().hex
