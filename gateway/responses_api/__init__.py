"""The OpenAI Responses API on the gateway (``/v1/responses``).

`routes` are the HTTP routes; `ResponseStorage` is opened in the app's lifespan when the
settings name a ledger database for stored responses (``previous_response_id``).
"""

from llmesh.gateway.responses_api.routes import routes
from llmesh.gateway.responses_api.store import ResponseStorage

__all__ = ["ResponseStorage", "routes"]
