"""When authentication is on: the startup rule, as pure functions of the bind and the store.

=================  =========  =====================  ==============================
bind address       keys       allow_unauthenticated  result
=================  =========  =====================  ==============================
any                some       any                    auth on
loopback           none       any                    auth off (the embedded default)
non-loopback       none       True                   auth off (explicit override)
non-loopback       none       False                  refuse to start
=================  =========  =====================  ==============================

A server that starts with authentication off switches it on, for good, once the key store
holds a key (see `Authenticator`): no restart is needed, and revoking every key leaves it on.

Loopback means 127.0.0.0/8, ``::1`` (also IPv4-mapped), ``localhost`` and ``*.localhost``,
or a ``unix:`` socket. Every other name, including ``0.0.0.0``, ``::`` and an empty host,
counts as reachable from the network.
"""

from __future__ import annotations

import ipaddress


def _host(bind: str) -> str:
    """The host part of ``host``, ``host:port``, ``[v6]`` or ``[v6]:port``."""
    bind = bind.strip()
    if bind.startswith("["):
        return bind[1:].partition("]")[0]
    if bind.count(":") == 1:
        return bind.partition(":")[0]
    return bind


def is_loopback(bind_host: str) -> bool:
    """True when a server bound to ``bind_host`` is reachable only from this machine."""
    if bind_host.strip().lower().startswith(("unix:", "unix-abstract:")):
        return True
    host = _host(bind_host).lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def auth_required(bind_host: str, has_keys: bool, allow_unauthenticated: bool) -> bool:
    """Whether every call must present an API key (see the table above)."""
    if has_keys:
        return True
    return not (is_loopback(bind_host) or allow_unauthenticated)


def check_bind(bind_host: str, has_keys: bool, allow_unauthenticated: bool) -> None:
    """Raise ValueError when a server would listen on the network with no way to authenticate."""
    if has_keys or not auth_required(bind_host, has_keys, allow_unauthenticated):
        return
    shown = bind_host.strip() or "all interfaces"
    raise ValueError(
        f"refusing to listen on {shown} without authentication: no API keys exist, so anyone "
        "who can reach this address could use the mesh. Create a key with "
        "'llmesh keys create --tenant NAME' (calls must then send 'authorization: Bearer "
        "<key>'), bind a loopback address such as 127.0.0.1, or pass "
        "--allow-unauthenticated to serve without authentication on purpose."
    )
