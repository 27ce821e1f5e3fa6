"""Batch jobs over HTTP: OpenAI's files and batches endpoints and Anthropic's Message
Batches, both over the orchestrator's BatchService (which keeps a tenant to its own files
and batches)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from llmesh.gateway.batches import anthropic_batches, openai_routes

__all__ = ["routes"]


def routes() -> list[BaseRoute]:
    """The OpenAI files and batches routes, and Anthropic's Message Batches routes."""
    return [*openai_routes.routes(), *anthropic_batches.routes()]
