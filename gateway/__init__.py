"""llmesh's HTTP gateway: a JSON mirror of the gRPC API and an OpenAI-compatible API.

`create_app` builds the ASGI app from `GatewaySettings`; `serve` runs it under uvicorn and
`start` runs it embedded on an ephemeral port.
"""

from llmesh.gateway.app import create_app
from llmesh.gateway.server import RunningGateway, run, serve, start
from llmesh.gateway.settings import GatewaySettings

__all__ = ["GatewaySettings", "RunningGateway", "create_app", "run", "serve", "start"]
