"""The media fetcher's SSRF guard and its fetches, against a real local HTTP server.

The server listens on loopback, which the guard refuses; the success cases reach it only
through the fetcher's `dial` seam, applied after the guard checked the (public-looking)
address the injected resolver gave, so the guard's code path is the production one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import trustme
from aiohttp import web

from llmesh.services.common.config_fields import FieldError
from llmesh.services.common.media_settings import MediaFetchConfig
from llmesh.services.orchestrator.providers.media_fetch import (
    FetchError,
    MediaFetcher,
    address_refusal,
)

HOST = "media.example.test"
PUBLIC = "93.184.215.14"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
IMAGES = frozenset({"image/png", "image/jpeg"})


@dataclass
class Server:
    """A local media server recording each request's path and Host header."""

    port: int = 0
    seen: list[tuple[str, str]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server()

    async def handle(request: web.Request) -> web.StreamResponse:
        state.seen.append((request.path, request.headers.get("Host", "")))
        name = request.match_info["name"]
        if name == "a.png":
            return web.Response(body=PNG, content_type="image/png")
        if name == "page.html":
            return web.Response(text="<html></html>", content_type="text/html")
        if name == "moved.png":
            raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")
        if name == "missing.png":
            raise web.HTTPNotFound()
        if name == "chunked.png":  # no Content-Length: the cap applies while reading
            resp = web.StreamResponse(headers={"Content-Type": "image/png"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for _ in range(64):
                await resp.write(b"\0" * 1024)
            await resp.write_eof()
            return resp
        if name == "slow.png":
            await state.release.wait()
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_get("/{name}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = runner.addresses[0][1]
    try:
        yield state
    finally:
        state.release.set()
        await runner.cleanup()


async def test_https_verifies_the_url_host_at_the_pinned_address() -> None:
    """TLS to the checked address still verifies the URL's host name (SNI and certificate):
    a certificate for the host passes, one for another name fails."""
    ca = trustme.CA()
    client = ssl.create_default_context()
    ca.configure_trust(client)

    async def image(_: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.router.add_get("/a.png", image)
    for name, ok in ((HOST, True), ("other.example.test", False)):
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert(name).configure_cert(server_ctx)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
        await site.start()
        port = runner.addresses[0][1]

        async def resolve(host: str, _port: int) -> list[str]:
            return [PUBLIC]

        def dial(address: str, _: int, port: int = port) -> tuple[str, int]:
            return "127.0.0.1", port

        fetcher = MediaFetcher(
            MediaFetchConfig(allow_hosts=(HOST,)), resolve=resolve, dial=dial, ssl_context=client
        )
        try:
            if ok:
                got = await fetcher.fetch(f"https://{HOST}/a.png", IMAGES, 1 << 20, None)
                assert got.data == PNG
            else:
                with pytest.raises(FetchError, match="cannot fetch"):
                    await fetcher.fetch(f"https://{HOST}/a.png", IMAGES, 1 << 20, None)
        finally:
            await runner.cleanup()


def _fetcher(
    server: Server, *, resolves_to: list[str] | None = None, **config: object
) -> tuple[MediaFetcher, list[tuple[str, int]]]:
    """A fetcher allowing `HOST` over http, resolving it to `resolves_to` (a public address
    by default) and dialing the local server for whatever address the guard let through."""
    dialed: list[tuple[str, int]] = []
    answers = resolves_to or [PUBLIC]

    async def resolve(host: str, port: int) -> list[str]:
        assert host == HOST
        return answers

    def dial(address: str, port: int) -> tuple[str, int]:
        dialed.append((address, port))
        return "127.0.0.1", server.port

    settings = {"allow_hosts": (HOST,), "allow_http": True, **config}
    return MediaFetcher(MediaFetchConfig(**settings), resolve=resolve, dial=dial), dialed  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # shared (CGNAT)
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fd00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
    ],
)
def test_non_global_addresses_are_refused(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", [PUBLIC, "8.8.8.8", "2606:4700::1111"])
def test_global_addresses_pass(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None


async def test_an_allowed_host_is_fetched_through_the_checked_address(server: Server) -> None:
    fetcher, dialed = _fetcher(server)
    got = await fetcher.fetch(f"http://{HOST}:{8081}/a.png", IMAGES, 1 << 20, None)
    assert (got.media_type, got.data) == ("image/png", PNG)
    assert dialed == [(PUBLIC, 8081)]
    assert server.seen == [("/a.png", f"{HOST}:8081")]  # the URL's host, not the address


@pytest.mark.parametrize(
    ("answers", "why"),
    [
        (["127.0.0.1"], "loopback"),
        (["169.254.169.254"], "link-local"),
        (["10.0.0.7"], "private"),
        (["::1"], "loopback"),
        (["::ffff:127.0.0.1"], "embedded"),
        ([PUBLIC, "192.168.0.10"], "private"),  # every answer must be global
    ],
)
async def test_a_host_resolving_to_a_non_global_address_is_refused(
    server: Server, answers: list[str], why: str
) -> None:
    fetcher, dialed = _fetcher(server, resolves_to=answers)
    with pytest.raises(FetchError, match=why):
        await fetcher.fetch(f"http://{HOST}/a.png", IMAGES, 1 << 20, None)
    assert dialed == [] and server.seen == []


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://other.example.test/a.png", "not in media_fetch.allow_hosts"),
        ("http://127.0.0.1/a.png", "not in media_fetch.allow_hosts"),
        ("http://user:pw@media.example.test/a.png", "credentials"),
        ("ftp://media.example.test/a.png", "only https or http"),
        ("http://media.example.test:99999/a.png", "not a valid URL"),
    ],
)
async def test_urls_outside_the_configuration_are_refused(
    server: Server, url: str, why: str
) -> None:
    fetcher, dialed = _fetcher(server)
    with pytest.raises(FetchError, match=why):
        await fetcher.fetch(url, IMAGES, 1 << 20, None)
    assert dialed == [] and server.seen == []


async def test_an_allowed_ip_literal_must_still_be_global(server: Server) -> None:
    fetcher, dialed = _fetcher(server, allow_hosts=("127.0.0.1", "169.254.169.254"))
    for url in ("http://127.0.0.1/a.png", "http://169.254.169.254/latest/meta-data/"):
        with pytest.raises(FetchError, match="refused"):
            await fetcher.fetch(url, IMAGES, 1 << 20, None)
    assert dialed == [] and server.seen == []


async def test_plain_http_needs_allow_http(server: Server) -> None:
    fetcher, _ = _fetcher(server, allow_http=False)
    with pytest.raises(FetchError, match="only https URLs"):
        await fetcher.fetch(f"http://{HOST}/a.png", IMAGES, 1 << 20, None)
    assert server.seen == []


def test_wildcards_match_subdomains_only() -> None:
    fetcher = MediaFetcher(MediaFetchConfig(allow_hosts=("*.example.test",)))
    assert fetcher.check_url("https://a.b.example.test/x")[1] == "a.b.example.test"
    for url in ("https://example.test/x", "https://badexample.test/x"):
        with pytest.raises(FetchError, match="allow_hosts"):
            fetcher.check_url(url)


async def test_a_redirect_is_not_followed(server: Server) -> None:
    fetcher, dialed = _fetcher(server)
    with pytest.raises(FetchError, match="redirects are not followed"):
        await fetcher.fetch(f"http://{HOST}/moved.png", IMAGES, 1 << 20, None)
    assert server.seen == [("/moved.png", HOST)] and len(dialed) == 1


@pytest.mark.parametrize(
    ("name", "cap", "why"),
    [
        ("page.html", 1 << 20, "content type 'text/html' is not one of image/jpeg, image/png"),
        ("a.png", 100, f"{len(PNG)} bytes, over the limit of 100"),
        ("chunked.png", 10_000, "more than 10000 bytes"),
        ("missing.png", 1 << 20, "HTTP 404"),
    ],
)
async def test_a_bad_answer_is_a_clear_error(server: Server, name: str, cap: int, why: str) -> None:
    fetcher, _ = _fetcher(server)
    with pytest.raises(FetchError, match=why):
        await fetcher.fetch(f"http://{HOST}/{name}", IMAGES, cap, None)


async def test_the_configured_cap_applies_below_the_parts_limit(server: Server) -> None:
    fetcher, _ = _fetcher(server, max_bytes=100)
    with pytest.raises(FetchError, match="over the limit of 100"):
        await fetcher.fetch(f"http://{HOST}/a.png", IMAGES, 1 << 20, None)


async def test_a_slow_server_times_out(server: Server) -> None:
    fetcher, _ = _fetcher(server, timeout=0.2)
    with pytest.raises(FetchError, match=r"no answer within 0\.2 s"):
        await fetcher.fetch(f"http://{HOST}/slow.png", IMAGES, 1 << 20, None)


async def test_an_unresolvable_host_is_a_clear_error() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    fetcher = MediaFetcher(MediaFetchConfig(allow_hosts=(HOST,)), resolve=resolve)
    with pytest.raises(FetchError, match="cannot resolve"):
        await fetcher.fetch(f"https://{HOST}/a.png", IMAGES, 1 << 20, None)


@pytest.mark.parametrize(
    "raw", [{"allow_hosts": "a.test"}, {"allow_hosts": ["http://a.test"]}, {"timeout": 0}]
)
def test_bad_settings_name_their_key(raw: dict[str, object]) -> None:
    with pytest.raises(FieldError) as caught:
        MediaFetchConfig(**raw)  # type: ignore[arg-type]
    assert caught.value.key in raw
