"""When authentication is on: the startup rule, as pure functions of the bind and the store.

=================  =========  =====================  ==============================
bind address       keys       allow_unauthenticated  result
=================  =========  =====================  ==============================
any                some       any                    auth on
loopback           none       any                    auth off (the embedded default)
non-loopback       none       True                   auth off, WARNING logged at start
non-loopback       none       False                  refuse to start
=================  =========  =====================  ==============================

A server that starts with authentication off switches it on, for good, once the key store
holds a key (see `Authenticator`): no restart is needed, and revoking every key leaves it on.

Loopback is decided by `llmesh.services.common.exposure.is_loopback`, which every listener shares.
"""

from __future__ import annotations

from llmesh.services.common.exposure import check_exposure, is_loopback

__all__ = ["auth_required", "check_bind", "is_loopback"]


def auth_required(bind_host: str, has_keys: bool, allow_unauthenticated: bool) -> bool:
    """Whether every call must present an API key (see the table above)."""
    if has_keys:
        return True
    return not (is_loopback(bind_host) or allow_unauthenticated)


def check_bind(
    bind_host: str, has_keys: bool, allow_unauthenticated: bool, *, service: str = "orchestrator"
) -> None:
    """Raise `ExposureError` (a ValueError) when `service` would listen on the network with no
    way to authenticate; log a WARNING when the override lets it."""
    check_exposure(
        service,
        bind_host,
        authenticated=has_keys,
        allow_unauthenticated=allow_unauthenticated,
        why="no API keys exist, so anyone who can reach this address could use the mesh",
        remedy=(
            "Create a key with 'llmesh keys create --tenant NAME' (calls must then send "
            "'authorization: Bearer <key>'), bind a loopback address such as 127.0.0.1, or "
            "pass --allow-unauthenticated to serve without authentication on purpose."
        ),
    )
