"""HTTP fetching against a real local server: validators, bounded bodies, safe redirects, timeouts."""

from __future__ import annotations

import asyncio
import base64
import gzip
import socket
import ssl
import threading
import time
import tracemalloc
import zlib
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest
import trustme

from feedrelay.config import HttpOptions
from feedrelay.ingest.fetch import Fetcher, FetchError, Response, origin
from tests.feedgen import make_items, rss
from tests.servers import FeedServer, redirect_to

FEED = rss(make_items(3))


def fetch(url: str, *, etag: str | None = None, last_modified: str | None = None, **options: Any) -> Response:
    async def go() -> Response:
        async with Fetcher(**options) as fetcher:
            return await fetcher.get(url, etag=etag, last_modified=last_modified)

    return asyncio.run(go())


def fetch_error(url: str, **options: Any) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetch(url, **options)
    return info.value



# --- conditional GET ------------------------------------------------------------------------------


def test_plain_get(feed_server: FeedServer) -> None:
    feed_server.set("/feed.xml", FEED)
    resp = fetch(feed_server.url("/feed.xml"))
    assert resp.status == 200 and resp.body == FEED
    assert resp.headers["content-type"].startswith("application/rss+xml")


def test_etag_revalidation_returns_304(feed_server: FeedServer) -> None:
    feed_server.set("/feed.xml", FEED)
    first = fetch(feed_server.url("/feed.xml"))
    assert first.etag
    again = fetch(feed_server.url("/feed.xml"), etag=first.etag)
    assert again.status == 304 and again.body == b""
    assert feed_server.requests[-1].headers["if-none-match"] == first.etag


def test_last_modified_revalidation_returns_304(feed_server: FeedServer) -> None:
    feed_server.set("/feed.xml", FEED, etag=False)
    first = fetch(feed_server.url("/feed.xml"))
    assert first.etag is None and first.last_modified
    again = fetch(feed_server.url("/feed.xml"), last_modified=first.last_modified)
    assert again.status == 304
    assert feed_server.requests[-1].headers["if-modified-since"] == first.last_modified


def test_changed_feed_returns_200_despite_validators(feed_server: FeedServer) -> None:
    feed_server.set("/feed.xml", FEED)
    first = fetch(feed_server.url("/feed.xml"))
    new_body = rss(make_items(4))
    feed_server.set("/feed.xml", new_body)
    again = fetch(feed_server.url("/feed.xml"), etag=first.etag, last_modified=first.last_modified)
    assert again.status == 200 and again.body == new_body


def test_user_agent_names_feedrelay(feed_server: FeedServer) -> None:
    feed_server.set("/feed.xml", FEED)
    fetch(feed_server.url("/feed.xml"))
    assert "feedrelay" in feed_server.requests[-1].headers["user-agent"]


# --- compression and size limits ------------------------------------------------------------------


def test_gzip_body_decoded(feed_server: FeedServer) -> None:
    feed_server.set("/feed.xml", gzip.compress(FEED), headers={"Content-Encoding": "gzip"})
    resp = fetch(feed_server.url("/feed.xml"))
    assert resp.body == FEED
    assert "gzip" in feed_server.requests[-1].headers["accept-encoding"]


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib", "raw"])
def test_deflate_body_decoded(feed_server: FeedServer, wbits: int) -> None:
    z = zlib.compressobj(wbits=wbits)
    feed_server.set("/feed.xml", z.compress(FEED) + z.flush(), headers={"Content-Encoding": "deflate"})
    assert fetch(feed_server.url("/feed.xml")).body == FEED


def test_corrupt_gzip_reported(feed_server: FeedServer) -> None:
    feed_server.set("/feed.xml", b"this is not gzip at all", headers={"Content-Encoding": "gzip"})
    assert "corrupt" in str(fetch_error(feed_server.url("/feed.xml")))


def _gzip_bomb(size: int) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1 << 20)
    out = [z.compress(chunk) for _ in range(size >> 20)]
    return b"".join(out) + z.flush()


def test_gzip_bomb_refused_without_inflating_it(feed_server: FeedServer) -> None:
    bomb = _gzip_bomb(50 << 20)  # 50 MB of zeros, ~50 KB on the wire
    assert len(bomb) < 200_000

    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.send_header("Content-Encoding", "gzip")
        h.send_header("Content-Length", str(len(bomb)))
        h.end_headers()
        h.wfile.write(bomb)

    feed_server.set_handler("/bomb.xml", handler)
    tracemalloc.start()
    try:
        with pytest.raises(FetchError) as info:
            fetch(feed_server.url("/bomb.xml"), max_body=1_000_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "1,000,000" in str(info.value) and "max_body" in str(info.value)
    assert peak < 15_000_000, f"peak {peak:,} bytes: the bomb was inflated"


def test_body_over_limit_with_content_length(feed_server: FeedServer) -> None:
    feed_server.set("/big.xml", b"x" * 2_000_000)
    error = fetch_error(feed_server.url("/big.xml"), max_body=1_000_000)
    assert "1,000,000" in str(error) and "max_body" in str(error)


def test_body_over_limit_without_content_length(feed_server: FeedServer) -> None:
    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.end_headers()
        for _ in range(40):
            h.wfile.write(b"y" * 65536)  # 2.6 MB, close-delimited

    feed_server.set_handler("/stream.xml", handler)
    error = fetch_error(feed_server.url("/stream.xml"), max_body=1_000_000)
    assert "1,000,000" in str(error)


def test_body_at_the_limit_is_fine(feed_server: FeedServer) -> None:
    feed_server.set("/exact.xml", b"z" * 1000)
    assert len(fetch(feed_server.url("/exact.xml"), max_body=1000).body) == 1000


# --- redirects ------------------------------------------------------------------------------------


def test_redirect_followed_and_final_url_reported(feed_server: FeedServer) -> None:
    feed_server.set("/new.xml", FEED)
    feed_server.set_handler("/old.xml", redirect_to("/new.xml", 301))
    resp = fetch(feed_server.url("/old.xml"))
    assert resp.body == FEED and resp.url == feed_server.url("/new.xml")


def test_cookie_set_by_a_redirect_is_sent_to_its_target(feed_server: FeedServer) -> None:
    """Some hosts answer a first visit with a cookie and a redirect, and serve the feed only with that cookie."""
    def set_cookie_and_redirect(h: BaseHTTPRequestHandler) -> None:
        h.send_response(302)
        h.send_header("Set-Cookie", "visited=yes; Path=/")
        h.send_header("Location", "/feed.xml")
        h.send_header("Content-Length", "0")
        h.end_headers()

    feed_server.set_handler("/start", set_cookie_and_redirect)
    feed_server.set("/feed.xml", FEED)
    assert fetch(feed_server.url("/start")).body == FEED
    assert [r.headers.get("cookie") for r in feed_server.requests if r.path == "/feed.xml"] == ["visited=yes"]


@pytest.mark.parametrize("target", ["file:///etc/passwd", "javascript:alert(1)", "ftp://127.0.0.1/feed",
                                    "data:text/plain,hi"])
def test_redirect_to_non_http_refused(feed_server: FeedServer, target: str) -> None:
    feed_server.set_handler("/feed.xml", redirect_to(target))
    error = fetch_error(feed_server.url("/feed.xml"))
    assert "non-http" in str(error)
    assert "passwd" not in str(error)


def test_redirect_loop_reported(feed_server: FeedServer) -> None:
    feed_server.set_handler("/a", redirect_to("/b"))
    feed_server.set_handler("/b", redirect_to("/a"))
    assert "loop" in str(fetch_error(feed_server.url("/a")))
    assert feed_server.hits("/a") == 1 and feed_server.hits("/b") == 1


def test_too_many_redirects_reported(feed_server: FeedServer) -> None:
    for i in range(10):
        feed_server.set_handler(f"/r{i}", redirect_to(f"/r{i + 1}"))
    feed_server.set("/r10", FEED)
    error = fetch_error(feed_server.url("/r0"), max_redirects=3)
    assert "more than 3 redirects" in str(error)
    assert feed_server.hits("/r4") == 0
    assert fetch(feed_server.url("/r0"), max_redirects=10).body == FEED


def test_redirect_without_location_reported(feed_server: FeedServer) -> None:
    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(302)
        h.send_header("Content-Length", "0")
        h.end_headers()

    feed_server.set_handler("/feed.xml", handler)
    error = fetch_error(feed_server.url("/feed.xml"))
    assert error.status == 302 and "Location" in str(error)


# --- failures -------------------------------------------------------------------------------------


def test_trickling_server_times_out(feed_server: FeedServer) -> None:
    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.end_headers()
        for _ in range(50):  # one byte every 0.2 s: never idle long enough for a read timeout
            h.wfile.write(b"<")
            h.wfile.flush()
            time.sleep(0.2)

    feed_server.set_handler("/slow.xml", handler)
    start = time.monotonic()
    error = fetch_error(feed_server.url("/slow.xml"), timeout=1)
    assert time.monotonic() - start < 2.5
    assert "timed out" in str(error)


@pytest.mark.parametrize("status", [404, 500])
def test_http_error_status(feed_server: FeedServer, status: int) -> None:
    feed_server.set("/feed.xml", b"nope", status=status)
    error = fetch_error(feed_server.url("/feed.xml"))
    assert error.status == status and str(status) in str(error)


def test_retry_after_passed_on(feed_server: FeedServer) -> None:
    feed_server.set("/feed.xml", b"slow down", status=429, headers={"Retry-After": "120"})
    error = fetch_error(feed_server.url("/feed.xml"))
    assert error.status == 429 and error.retry_after == 120


def test_connection_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    error = fetch_error(f"http://127.0.0.1:{port}/feed.xml")
    assert "cannot connect" in str(error)
    assert error.status is None


# --- proxies --------------------------------------------------------------------------------------


def test_proxy_from_the_environment_is_used_except_for_no_proxy_hosts(feed_server: FeedServer,
                                                                       monkeypatch) -> None:  # type: ignore[no-untyped-def]
    proxy = FeedServer().start()  # a forward proxy sees the whole URL as the request target
    try:
        proxy.set("/feed.xml", FEED)
        feed_server.set("/direct.xml", FEED)
        monkeypatch.setenv("HTTP_PROXY", proxy.url("/"))
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")

        async def go() -> list[bytes]:
            async with Fetcher() as fetcher:
                via = await fetcher.get("http://feeds.feedrelay-test.invalid/feed.xml")  # no DNS: only the proxy knows
                direct = await fetcher.get(feed_server.url("/direct.xml"))
                return [via.body, direct.body]

        assert asyncio.run(go()) == [FEED, FEED]
        assert [r.path for r in proxy.requests] == ["http://feeds.feedrelay-test.invalid/feed.xml"]
        assert feed_server.hits("/direct.xml") == 1
    finally:
        proxy.stop()


def test_unusable_proxy_url_is_a_clear_error_without_its_password(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HTTPS_PROXY", "gopher://user:hunter2@proxy.example:1080")
    error = fetch_error("https://feeds.feedrelay-test.invalid/feed.xml")
    assert "HTTPS_PROXY" in str(error) and "hunter2" not in str(error)


# --- TLS ------------------------------------------------------------------------------------------


@pytest.fixture
def tls_server(tmp_path: Any):  # type: ignore[no-untyped-def]
    """A feed server on https://127.0.0.1 with a certificate from a test CA, and that CA's PEM file."""
    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = FeedServer().start(tls=context)
    server.set("/feed.xml", FEED)
    yield server, str(ca_file)
    server.stop()


def test_https_feed_with_a_trusted_certificate_keeps_its_connection(tls_server: Any, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    server, ca_file = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)  # how a deployment adds its own CA, too
    url = server.url("/feed.xml")
    assert url.startswith("https://")

    async def go() -> list[int]:
        async with Fetcher() as fetcher:
            first = await fetcher.get(url)
            assert first.body == FEED
            return [first.status] + [(await fetcher.get(url, etag=first.etag)).status for _ in range(3)]

    assert asyncio.run(go()) == [200, 304, 304, 304]
    assert server.connections_opened == 1  # one TLS handshake for four polls


def test_https_feed_with_an_untrusted_certificate_is_refused(tls_server: Any) -> None:
    server, _ = tls_server
    error = fetch_error(server.url("/feed.xml"))
    assert "cannot connect" in str(error) and "certificate" in str(error).lower()


# --- connection pools -----------------------------------------------------------------------------


def test_conditional_gets_reuse_one_connection(feed_server: FeedServer) -> None:
    """A 304 must hand its connection back: a relay polling unchanged feeds should not open a new
    TCP (and, in real life, TLS) connection for every poll."""
    feed_server.set("/feed.xml", FEED)
    url = feed_server.url("/feed.xml")

    async def go() -> list[int]:
        async with Fetcher() as fetcher:
            first = await fetcher.get(url)
            return [(await fetcher.get(url, etag=first.etag)).status for _ in range(5)]

    assert asyncio.run(go()) == [304] * 5
    assert feed_server.hits("/feed.xml") == 6
    assert feed_server.connections_opened == 1


def test_a_connection_the_server_closed_while_idle_is_not_reused(feed_server: FeedServer) -> None:
    """Servers drop idle keep-alive connections; the next poll must open a new one, not fail on the dead one."""
    feed_server.set("/feed.xml", FEED)
    url = feed_server.url("/feed.xml")

    async def go() -> list[int]:
        async with Fetcher() as fetcher:
            first = await fetcher.get(url)
            feed_server.drop_connections()
            await asyncio.sleep(0.2)
            second = await fetcher.get(url, etag=first.etag)
            return [first.status, second.status]

    assert asyncio.run(go()) == [200, 304]
    assert feed_server.connections_opened == 2


def test_idle_origin_pools_are_closed_beyond_the_limit() -> None:
    """One small pool per origin, but idle ones are closed past `keep_idle`: memory follows what is in
    flight, not how many hosts the feeds live on."""
    servers = [FeedServer().start() for _ in range(5)]
    try:
        for s in servers:
            s.set("/feed.xml", FEED)

        async def go() -> tuple[list[int], int, int]:
            async with Fetcher() as fetcher:
                fetcher._pools.keep_idle = 2
                statuses = [(await fetcher.get(s.url("/feed.xml"))).status for s in servers]
                pools = fetcher._pools.pools
                statuses.append((await fetcher.get(servers[0].url("/feed.xml"))).status)  # its pool was closed
                return statuses, pools, fetcher._pools.pools

        statuses, pools_after_five, pools_at_end = asyncio.run(go())
        assert statuses == [200] * 6
        assert pools_after_five == 2 and pools_at_end == 2
        assert servers[0].connections_opened == 2  # reconnected after its pool was dropped
    finally:
        for s in servers:
            s.stop()


class Concurrency:
    """A slow handler serving FEED that counts the requests it serves at once: ``peak`` is the most at a time."""

    def __init__(self, delay: float) -> None:
        self.delay, self.active, self.peak = delay, 0, 0
        self._lock = threading.Lock()

    def __call__(self, h: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        time.sleep(self.delay)
        with self._lock:
            self.active -= 1
        h.send_response(200)
        h.send_header("Content-Length", str(len(FEED)))
        h.end_headers()
        h.wfile.write(FEED)


def test_many_origins_in_parallel_each_limited_to_per_host(feed_server: FeedServer) -> None:
    """per_host caps concurrency per origin even when hundreds of requests are queued for it."""
    slow = Concurrency(0.02)
    feed_server.set_handler("/slow.xml", slow)

    async def go() -> list[int]:
        async with Fetcher(per_host=3) as fetcher:
            results = await asyncio.gather(*(fetcher.get(feed_server.url("/slow.xml")) for _ in range(30)))
            return [r.status for r in results]

    assert asyncio.run(go()) == [200] * 30
    assert slow.peak == 3


def test_origin_is_scheme_host_and_port_with_the_default_port_filled_in() -> None:
    assert origin("https://Feeds.Example.com/a.xml") == origin("HTTPS://feeds.example.com:443/b.xml?x=1") == (
        "https", "feeds.example.com", 443)
    assert origin("http://feeds.example.com/") == ("http", "feeds.example.com", 80)
    assert origin("http://feeds.example.com:8080/") != origin("http://feeds.example.com/")
    assert origin("https://feeds.example.com/") != origin("http://feeds.example.com/")
    # The pools key on the request's parsed httpx.URL: the same origin, however it is spelled.
    for url in ("HTTPS://Feeds.Example.COM:443/x", "http://[::1]:8080/x", "https://bücher.example/feed",
                "https://xn--bcher-kva.example/feed"):
        assert origin(httpx.URL(url)) == origin(url)


def test_per_host_counts_every_spelling_of_an_origin_as_one(feed_server: FeedServer,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Two feeds on one host, one written with its default port: one origin, one per_host limit. (Through a
    proxy on loopback, since the test cannot listen on port 80.)"""
    slow = Concurrency(0.05)
    feed_server.set_handler("/slow.xml", slow)  # the proxy: it sees the whole URL, and serves it
    monkeypatch.setenv("HTTP_PROXY", feed_server.url("/"))
    urls = ["http://feeds.feedrelay-test.invalid/slow.xml", "http://FEEDS.feedrelay-test.invalid:80/slow.xml"] * 3

    async def go() -> list[int]:
        async with Fetcher(per_host=1) as fetcher:
            return [r.status for r in await asyncio.gather(*(fetcher.get(u) for u in urls))]

    assert asyncio.run(go()) == [200] * 6
    assert slow.peak == 1


# --- a feed's own headers, basic auth and User-Agent -----------------------------------------------------------

TOKEN = "tok-CANARY-5a4b3c"
OPTIONS = HttpOptions(headers=(("X-Service-Token", "SVC_TOKEN"),), username_env="FEED_USER",
                      password_env="FEED_PASSWORD", user_agent="ExampleReader/2.0 (+https://example.com/bot)")
ENV = {"SVC_TOKEN": TOKEN + "\n", "FEED_USER": "reader", "FEED_PASSWORD": "pw-CANARY-1f2e3d"}


def fetch_with(url: str, options: HttpOptions = OPTIONS, environ: dict[str, str] = ENV, **kw: Any) -> Response:
    async def go() -> Response:
        async with Fetcher(environ=environ) as fetcher:
            return await fetcher.get(url, options=options, **kw)

    return asyncio.run(go())


def test_a_feeds_headers_auth_and_user_agent_are_sent(feed_server: FeedServer) -> None:
    feed_server.set("/feed.xml", FEED)
    assert fetch_with(feed_server.url("/feed.xml")).body == FEED
    [request] = feed_server.requests
    assert request.headers["x-service-token"] == TOKEN  # stripped of the env file's newline
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"reader:pw-CANARY-1f2e3d").decode()
    assert request.headers["user-agent"] == OPTIONS.user_agent


def test_a_redirect_to_another_origin_gets_the_user_agent_but_no_header_or_credentials(
        feed_server: FeedServer) -> None:
    with FeedServer() as elsewhere:
        elsewhere.set("/feed.xml", FEED)
        feed_server.set_handler("/feed.xml", redirect_to(elsewhere.url("/hop.xml")))
        # ... and from there back to the first origin: what was dropped stays dropped.
        elsewhere.set_handler("/hop.xml", redirect_to(feed_server.url("/final.xml")))
        feed_server.set("/final.xml", FEED)
        response = fetch_with(feed_server.url("/feed.xml"))
        assert response.body == FEED and response.url == feed_server.url("/final.xml")
        assert feed_server.requests[0].headers["x-service-token"] == TOKEN
        [hop] = elsewhere.requests
        assert hop.headers["user-agent"] == OPTIONS.user_agent
        assert "x-service-token" not in hop.headers and "authorization" not in hop.headers
        assert "x-service-token" not in feed_server.requests[-1].headers


def test_a_redirect_within_the_origin_keeps_the_feeds_headers(feed_server: FeedServer) -> None:
    feed_server.set_handler("/old.xml", redirect_to("/feed.xml", 301))
    feed_server.set("/feed.xml", FEED)
    assert fetch_with(feed_server.url("/old.xml")).moved_to == feed_server.url("/feed.xml")
    assert [r.headers.get("x-service-token") for r in feed_server.requests] == [TOKEN, TOKEN]


@pytest.mark.parametrize(("environ", "says"), [
    ({**ENV, "SVC_TOKEN": ""}, "$SVC_TOKEN is not set (the value of the feed's X-Service-Token header)"),
    ({k: v for k, v in ENV.items() if k != "FEED_PASSWORD"},
     "$FEED_PASSWORD is not set (the feed's basic auth password)"),
    ({**ENV, "SVC_TOKEN": TOKEN + "\r\nX-Injected: 1"}, "$SVC_TOKEN (the value of the feed's X-Service-Token header) "
                                                         "holds a line break"),
    ({**ENV, "SVC_TOKEN": TOKEN + "é"}, "holds a line break, a control or a non-ASCII character"),
    ({**ENV, "FEED_USER": "a:b"}, "$FEED_USER holds a ':'"),
])
def test_a_missing_or_unusable_variable_fails_the_fetch_without_sending_or_quoting_it(
        feed_server: FeedServer, environ: dict[str, str], says: str) -> None:
    feed_server.set("/feed.xml", FEED)
    with pytest.raises(FetchError) as info:
        fetch_with(feed_server.url("/feed.xml"), environ=environ)
    assert says in str(info.value) and info.value.config_problem
    assert TOKEN not in str(info.value) and "pw-CANARY" not in str(info.value)
    assert feed_server.requests == []  # nothing was sent without it
