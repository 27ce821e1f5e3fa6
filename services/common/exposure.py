"""Whether a listener may serve the network: the one check every llmesh server makes at bind.

A server bound to a loopback address is reachable only from this machine. Bound anywhere
else, it must be able to tell callers apart (API keys exist), or the operator must have
opted out on purpose (``--allow-unauthenticated`` / ``auth.allow_unauthenticated``), in
which case it starts with a WARNING naming the address. Otherwise it refuses to start.

Loopback means 127.0.0.0/8, ``::1`` (also IPv4-mapped), ``localhost`` and ``*.localhost``,
or a ``unix:`` socket. Every other name, including ``0.0.0.0``, ``::`` and an empty host,
counts as reachable from the network.
"""

from __future__ import annotations

import ipaddress
import logging

log = logging.getLogger("llmesh.exposure")


class ExposureError(ValueError):
    """A server would listen on the network with no way to authenticate its callers."""


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


def check_exposure(
    service: str,
    bind: str,
    *,
    authenticated: bool,
    allow_unauthenticated: bool,
    why: str,
    remedy: str,
) -> None:
    """Refuse (`ExposureError`) or loudly allow an unauthenticated non-loopback bind.

    `authenticated` is True when the server will demand API keys; `why` says what an
    unauthenticated caller could do and `remedy` how to fix it, both one sentence.
    """
    if authenticated or is_loopback(bind):
        return
    shown = bind.strip() or "all interfaces"
    if allow_unauthenticated:
        log.warning(
            "%s listens on %s WITHOUT AUTHENTICATION (allow_unauthenticated is set): "
            "anyone who can reach this address can use it",
            service,
            shown,
        )
        return
    raise ExposureError(
        f"{service}: refusing to listen on {shown} without authentication: {why}. {remedy}"
    )
