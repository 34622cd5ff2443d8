"""Contract tests for the private internals of httpx, httpcore and asyncio that feedrelay's fetcher leans on.

feedrelay.ingest.fetch and feedrelay.ingest.netio reach past the public APIs in a few places, each for speed
(see the comments there). A dependency upgrade can rename or rework any of them, and most would then fail
silently: feedrelay would still fetch, only slower, or would reuse connections the server has closed. Each test
here checks one of them, first by shape and then by what it does on a real loopback connection, and fails
naming the attribute and the versions installed. pyproject.toml pins httpx and httpcore to the versions this
file passes with; raise a pin only when it passes with the new version.
"""

from __future__ import annotations

import asyncio
import inspect
import platform
from typing import Any

import httpcore
import httpx
import pytest

from feedrelay.ingest import fetch as fetch_module
from feedrelay.ingest import netio
from feedrelay.ingest.fetch import Fetcher, origin
from tests.feedgen import make_items, rss
from tests.servers import FeedServer

FEED = rss(make_items(2))


def broken(what: str) -> str:
    return (f"{what} (httpx {httpx.__version__}, httpcore {httpcore.__version__}, Python "
            f"{platform.python_version()}). feedrelay.ingest.fetch / netio rely on it: adapt them before raising the "
            "pins in pyproject.toml")


# --- httpx.AsyncHTTPTransport._pool: our httpcore pool on asyncio streams instead of anyio's ---------------------


def test_async_http_transport_keeps_its_pool_in_underscore_pool() -> None:
    transport = httpx.AsyncHTTPTransport()
    pool = getattr(transport, "_pool", None)
    assert isinstance(pool, httpcore.AsyncConnectionPool), broken(
        f"httpx.AsyncHTTPTransport._pool is {type(pool).__name__}, not an httpcore.AsyncConnectionPool")


def test_the_replaced_pool_is_the_one_requests_go_through(feed_server: FeedServer,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """If httpx stopped sending requests through `_pool`, the assignment in Fetcher would do nothing and every
    request would go through anyio again (~20% more CPU): the connection must come from our backend."""
    connects: list[tuple[str, int]] = []

    class Counting(netio.AsyncioBackend):
        async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
            connects.append((host, port))
            return await super().connect_tcp(host, port, *args, **kwargs)

    monkeypatch.setattr(fetch_module, "AsyncioBackend", Counting)
    feed_server.set("/feed.xml", FEED)

    async def go() -> int:
        async with Fetcher() as fetcher:
            return (await fetcher.get(feed_server.url("/feed.xml"))).status

    assert asyncio.run(go()) == 200
    assert connects == [("127.0.0.1", feed_server.port)], broken(
        "a request through httpx.AsyncHTTPTransport did not use the pool assigned to its `_pool` attribute")


# --- httpx.AsyncClient._cookies: a jar that skips httpx's urllib shims when a response sets no cookie -----------


def test_async_client_keeps_its_jar_in_underscore_cookies() -> None:
    async def go() -> tuple[object, object]:
        async with Fetcher() as fetcher:
            client = fetcher._client
            return getattr(client, "_cookies", None), client.cookies

    jar, public = asyncio.run(go())
    assert isinstance(jar, fetch_module._Cookies), broken(
        f"httpx.AsyncClient._cookies is {type(jar).__name__} after Fetcher set it")
    assert public is jar, broken("httpx.AsyncClient.cookies no longer returns the jar in AsyncClient._cookies")


def test_the_replaced_jar_extracts_cookies_only_from_responses_that_set_them(
        feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []  # responses httpx's own (costly) extract_cookies looked at
    original = httpx.Cookies.extract_cookies

    def spy(self: httpx.Cookies, response: httpx.Response) -> None:
        parsed.append(response.url.path)
        original(self, response)

    monkeypatch.setattr(httpx.Cookies, "extract_cookies", spy)
    feed_server.set("/plain.xml", FEED)
    feed_server.set("/sets-cookie.xml", FEED, headers={"Set-Cookie": "session=abc; Path=/"})

    async def go() -> None:
        async with Fetcher() as fetcher:
            await fetcher.get(feed_server.url("/plain.xml"))
            await fetcher.get(feed_server.url("/sets-cookie.xml"))
            await fetcher.get(feed_server.url("/plain.xml"))

    asyncio.run(go())
    assert parsed == ["/sets-cookie.xml"], broken(
        "httpx.AsyncClient no longer calls extract_cookies on the jar in AsyncClient._cookies for each response"
        if not parsed else "the jar in AsyncClient._cookies parsed responses that set no cookie")
    assert feed_server.requests[-1].headers.get("cookie") == "session=abc", broken(
        "a cookie stored in the jar in AsyncClient._cookies was not sent back")


# --- asyncio.StreamReader._buffer, and httpcore's "is_readable" probe of idle connections ------------------------


def test_stream_reader_keeps_unread_bytes_in_underscore_buffer() -> None:
    async def go() -> object:
        reader = asyncio.StreamReader()
        reader.feed_data(b"xy")
        return getattr(reader, "_buffer", None)

    buffer = asyncio.run(go())
    assert isinstance(buffer, bytes | bytearray | memoryview) and len(buffer) == 2, broken(
        f"asyncio.StreamReader._buffer is {buffer!r} after feed_data(b'xy'), not the two unread bytes")


def test_is_readable_reports_bytes_and_eof_waiting_on_an_idle_connection() -> None:
    async def go() -> list[bool]:
        sent = asyncio.Event()
        finish = asyncio.Event()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await sent.wait()
            writer.write(b"HTTP/1.1 408 Request Timeout\r\n\r\n")  # what some servers send an idle client
            await writer.drain()
            await finish.wait()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        stream = await netio.AsyncioBackend().connect_tcp("127.0.0.1", port)
        seen = [bool(stream.get_extra_info("is_readable"))]
        sent.set()
        await asyncio.sleep(0.1)
        seen.append(bool(stream.get_extra_info("is_readable")))  # unread bytes: not reusable
        assert await stream.read(100)
        seen.append(bool(stream.get_extra_info("is_readable")))  # read, and the server still open
        finish.set()
        await asyncio.sleep(0.1)
        seen.append(bool(stream.get_extra_info("is_readable")))  # closed by the server
        await stream.aclose()
        server.close()
        await server.wait_closed()
        return seen

    assert asyncio.run(go()) == [False, True, False, True], broken(
        "netio._Stream.get_extra_info('is_readable') (which reads asyncio.StreamReader._buffer) misreports an idle "
        "connection")


def test_httpcore_probes_is_readable_before_reusing_an_idle_connection(feed_server: FeedServer,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """httpcore decides whether a pooled connection is still good by asking the network stream for
    "is_readable"; if it stopped asking, a connection the server closed would be reused, and fail."""
    asked: list[str] = []
    original = netio._Stream.get_extra_info

    def spy(self: netio._Stream, info: str) -> Any:
        asked.append(info)
        return original(self, info)

    monkeypatch.setattr(netio._Stream, "get_extra_info", spy)
    feed_server.set("/feed.xml", FEED)
    url = feed_server.url("/feed.xml")

    async def go() -> list[int]:
        async with Fetcher() as fetcher:
            first = await fetcher.get(url)
            asked.clear()
            second = await fetcher.get(url, etag=first.etag)
            return [first.status, second.status]

    assert asyncio.run(go()) == [200, 304]
    assert feed_server.connections_opened == 1
    assert "is_readable" in asked, broken("httpcore reused a pooled connection without asking the network stream "
                                          "get_extra_info('is_readable')")


# --- the public interfaces netio implements, which httpcore calls with keywords ---------------------------------


@pytest.mark.parametrize(("base", "ours"), [(httpcore.AsyncNetworkBackend, netio.AsyncioBackend),
                                            (httpcore.AsyncNetworkStream, netio._Stream)])
def test_netio_implements_every_method_of_httpcores_network_interfaces(base: type, ours: type) -> None:
    for name, member in vars(base).items():
        if name.startswith("_") or not callable(member):
            continue
        mine = getattr(ours, name)
        assert mine is not member, broken(f"httpcore.{base.__name__}.{name} is new, and netio.{ours.__name__} "
                                          "does not implement it")
        theirs = list(inspect.signature(member).parameters)
        assert list(inspect.signature(mine).parameters) == theirs, broken(
            f"httpcore.{base.__name__}.{name} now takes ({', '.join(theirs)})")


# --- httpx.Response.stream: _PoolPerOrigin wraps it to learn when a response is done with ------------------------


def test_each_origin_pool_is_released_once_its_response_is_read(feed_server: FeedServer) -> None:
    feed_server.set("/feed.xml", FEED)
    url = feed_server.url("/feed.xml")

    async def go() -> tuple[int, int, int]:
        async with Fetcher() as fetcher:
            first = await fetcher.get(url)
            await fetcher.get(url, etag=first.etag)  # a 304: no body to read
            pools = fetcher._pools
            return len(pools._busy), len(pools._idle), pools.pools

    busy, idle, pools = asyncio.run(go())
    assert (busy, idle, pools) == (0, 1, 1), broken(
        "httpx no longer closes the stream a transport put on httpx.Response.stream when the response is closed")
    assert origin(url) == ("http", "127.0.0.1", feed_server.port)
