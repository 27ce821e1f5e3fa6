"""Fetching a content part's URL for a provider that needs its bytes, without SSRF.

Only what ``media_fetch`` allows is fetched: an https URL (http when `allow_http`) whose host
is on the allow-list. The host is resolved once; every address it resolves to must be a
global one (no loopback, private, link-local as 169.254.169.254, shared CGNAT, multicast,
reserved or unspecified address, nor an IPv6 address embedding one), and the connection goes
to the address checked, so a second DNS answer cannot move it (DNS rebinding). TLS still
verifies the host name (SNI and Host are the URL's). Redirects are refused, the body is read
up to a cap and aborted beyond it, its content type must be one the part allows, and the
whole fetch has a timeout. Every refusal or failure is a `FetchError` saying why.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from llmesh.services.common.media_settings import MediaFetchConfig

__all__ = ["Dial", "FetchError", "Fetched", "MediaFetcher", "Resolve", "address_refusal"]

Resolve = Callable[[str, int], Awaitable[list[str]]]
"""The addresses (as text) a host name resolves to, for a port."""
Dial = Callable[[str, int], tuple[str, int]]
"""Where to connect for a checked (address, port): the identity, except in tests, which point
a checked public-looking address at a local server (after the guard, so the guard is real)."""

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_CHUNK = 64 * 1024


class FetchError(Exception):
    """A URL that is refused or could not be fetched; the message says why."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """A fetched body and its media type."""

    media_type: str
    data: bytes


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _embedded(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo client, NAT64)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_refusal(ip: IPAddress) -> str | None:
    """Why llmesh must not connect to `ip` (None when it is a global unicast address)."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded(ip)
        if inner is not None:
            why = address_refusal(inner)
            if why is not None:
                return f"{why} (embedded in {ip})"
    for kind, test in (
        ("a loopback address", ip.is_loopback),
        ("an unspecified address", ip.is_unspecified),
        ("a link-local address", ip.is_link_local),
        ("a multicast address", ip.is_multicast),
        ("a private address", ip.is_private),
        ("a reserved address", ip.is_reserved),
    ):
        if test:
            return f"{ip} is {kind}"
    if not ip.is_global:
        return f"{ip} is not a global address"
    return None


def host_allowed(host: str, allow_hosts: tuple[str, ...]) -> bool:
    """Whether `host` is on the allow-list (``*.example.com`` matches its subdomains)."""
    for pattern in allow_hosts:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


async def _system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _Pinned(AbstractResolver):
    """aiohttp's resolver for one fetch: the checked address of the one host, nothing else."""

    def __init__(self, host: str, address: str, port: int, dial: Dial | None) -> None:
        self._host, self._address, self._port, self._dial = host, address, port, dial

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host.rstrip(".").lower() != self._host:
            raise OSError(f"{host} is not the host checked")
        address, port = (self._address, port)
        if self._dial is not None:
            address, port = self._dial(address, port)
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": family,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None


class MediaFetcher:
    """Fetches allowed URLs; `resolve`, `dial` and `ssl_context` are seams for tests."""

    def __init__(
        self,
        config: MediaFetchConfig,
        *,
        resolve: Resolve | None = None,
        dial: Dial | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config
        self._resolve = resolve or _system_resolve
        self._dial = dial
        self._ssl: ssl.SSLContext | bool = ssl_context or True

    def check_url(self, url: str) -> tuple[str, str, int]:
        """(scheme, host, port) of a URL the configuration allows; else `FetchError`."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise FetchError(f"not a valid URL: {exc}") from None
        schemes = ("https", "http") if self.config.allow_http else ("https",)
        if parts.scheme not in schemes:
            raise FetchError(f"only {' or '.join(schemes)} URLs are fetched (media_fetch)")
        if parts.username is not None or parts.password is not None:
            raise FetchError("URLs with credentials are not fetched")
        host = (parts.hostname or "").rstrip(".").lower()
        if not host:
            raise FetchError("the URL has no host")
        if not host_allowed(host, self.config.allow_hosts):
            raise FetchError(f"host {host!r} is not in media_fetch.allow_hosts")
        return parts.scheme, host, port or (443 if parts.scheme == "https" else 80)

    async def _address(self, host: str, port: int) -> str:
        """The one address to connect to: every address of the host must be global."""
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                found = await self._resolve(host, port)
            except OSError as exc:
                raise FetchError(f"cannot resolve {host}: {exc}") from None
            try:
                addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
            except ValueError as exc:
                raise FetchError(f"cannot resolve {host}: {exc}") from None
        if not addresses:
            raise FetchError(f"cannot resolve {host}: no address")
        for ip in addresses:
            why = address_refusal(ip)
            if why is not None:
                raise FetchError(f"refused: {host} resolves to {why}")
        return str(addresses[0])

    async def fetch(
        self, url: str, media_types: frozenset[str], max_bytes: int, timeout: float | None
    ) -> Fetched:
        """The body of `url` (at most `max_bytes`, of one of `media_types`), within the
        configured timeout (and `timeout`, the call's time left, when shorter)."""
        _, host, port = self.check_url(url)
        limit = (
            self.config.timeout if timeout is None else max(min(timeout, self.config.timeout), 0)
        )
        cap = min(max_bytes, self.config.max_bytes)
        try:
            async with asyncio.timeout(limit):
                address = await self._address(host, port)
                return await self._get(url, host, address, port, media_types, cap)
        except TimeoutError:
            raise FetchError(f"no answer within {limit:g} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise FetchError(f"cannot fetch: {exc or type(exc).__name__}") from None

    async def _get(
        self,
        url: str,
        host: str,
        address: str,
        port: int,
        media_types: frozenset[str],
        cap: int,
    ) -> Fetched:
        connector = aiohttp.TCPConnector(
            resolver=_Pinned(host, address, port, self._dial),
            use_dns_cache=False,
            ssl=self._ssl,
            force_close=True,
        )
        headers: dict[str, Any] = {
            "Accept": ", ".join(sorted(media_types)),
            "Accept-Encoding": "identity",
        }
        async with (
            aiohttp.ClientSession(connector=connector, trust_env=False) as session,
            session.get(url, allow_redirects=False, headers=headers) as resp,
        ):
            if 300 <= resp.status < 400:
                where = resp.headers.get("Location", "")
                raise FetchError(f"redirects are not followed ({resp.status} to {where!r})")
            if resp.status != 200:
                raise FetchError(f"the server answered HTTP {resp.status}")
            media_type = resp.content_type.lower()
            if media_type not in media_types:
                allowed = ", ".join(sorted(media_types))
                raise FetchError(f"content type {media_type!r} is not one of {allowed}")
            if resp.content_length is not None and resp.content_length > cap:
                raise FetchError(f"{resp.content_length} bytes, over the limit of {cap}")
            body = bytearray()
            async for chunk in resp.content.iter_chunked(_CHUNK):
                body += chunk
                if len(body) > cap:
                    raise FetchError(f"more than {cap} bytes, over the limit")
            return Fetched(media_type, bytes(body))
