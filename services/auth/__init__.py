"""API keys and tenants: who a call acts for, and whether it may run at all.

Keys (``llm_<key_id>_<secret>``) live in a `KeyStore` (SQLite by default, or PostgreSQL),
stored only as keyed hashes; an `Authenticator` turns each call's metadata into a
`Principal`; `check_bind` decides at startup whether authentication is on. Bearer tokens
(JWT) from configured issuers are accepted beside keys (`TokenVerifier`).
"""

from llmesh.services.auth.authenticator import Authenticator, bearer_token
from llmesh.services.auth.bind import auth_required, check_bind, is_loopback
from llmesh.services.auth.cli import keys_command
from llmesh.services.auth.keys import KeyInfo, Principal
from llmesh.services.auth.startup import Access, check_listener, open_access
from llmesh.services.auth.store import KeyStore, open_key_store
from llmesh.services.auth.tokens import TokenVerifier

__all__ = [
    "Access",
    "Authenticator",
    "KeyInfo",
    "KeyStore",
    "Principal",
    "TokenVerifier",
    "auth_required",
    "bearer_token",
    "check_bind",
    "check_listener",
    "is_loopback",
    "keys_command",
    "open_access",
    "open_key_store",
]
