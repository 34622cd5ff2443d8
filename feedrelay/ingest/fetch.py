"""HTTP fetching for every source: conditional GET, bounded bodies, safe redirects, polite per host.

Each origin gets its own small connection pool (`_PoolPerOrigin`): httpcore re-checks every pooled
connection against every queued request on each request and response (encode/httpx#3215), so one
big pool, or a few shared ones, makes each request cost more the more feeds are in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import ssl
import urllib.request
import zlib
from collections import OrderedDict, defaultdict
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from feedrelay import __version__
from feedrelay.config import HttpOptions, basic_credentials
from feedrelay.ingest.netio import AsyncioBackend

USER_AGENT = f"feedrelay/{__version__} (self-hosted feed-to-Slack relay; python-httpx)"
_REDIRECTS = {301, 302, 303, 307, 308}
_PERMANENT = {301, 308}
_CHUNK = 64 * 1024
_PORTABLE_HEADERS = {"accept", "user-agent"}
_DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int | None]  # (scheme, host, port): see origin()
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # what h11 refuses in a header value (it would quote it)


class FetchError(Exception):
    """A fetch that failed in a way worth telling the user about (never contains secrets)."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None,
                 headers: dict[str, str] | None = None, config_problem: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.headers = headers or {}
        self.config_problem = config_problem  # nothing was sent: retrying cannot help until the setup is fixed


@dataclass
class Response:
    url: str  # after redirects
    status: int  # 200 or 304
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)  # lowercase keys
    moved_to: str | None = None  # where every redirect on the way said the resource now lives (301/308)

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("last-modified")


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
        # "inf" and "nan" parse as floats but name no time to wait: as good as no header.
        return max(0.0, seconds) if math.isfinite(seconds) else None
    except ValueError:
        from datetime import UTC, datetime
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            return None


class _Decoder:
    """gzip/deflate decoding with a hard cap on the *decompressed* size (gzip bombs)."""

    def __init__(self, encoding: str, limit: int) -> None:
        self.limit = limit
        self.size = 0
        enc = encoding.strip().lower()
        if enc in ("", "identity"):
            self.z = None
        elif enc in ("gzip", "x-gzip"):
            self.z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif enc == "deflate":
            self.z = zlib.decompressobj()
            self.raw_fallback = True
        else:
            raise FetchError(f"unsupported Content-Encoding {encoding!r}")
        self.parts: list[bytes] = []

    def feed(self, data: bytes) -> None:
        if self.z is None:
            self._add(data)
            return
        try:
            while data:
                out = self.z.decompress(data, self.limit - self.size + 1)
                self._add(out)
                data = self.z.unconsumed_tail
        except zlib.error as exc:
            if getattr(self, "raw_fallback", False) and self.size == 0:
                # Some servers send raw deflate without the zlib header.
                self.z = zlib.decompressobj(-zlib.MAX_WBITS)
                self.raw_fallback = False
                self.feed(data)
                return
            raise FetchError(f"corrupt compressed body: {exc}") from None

    def _add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise FetchError(f"response body exceeds the {self.limit:,}-byte limit (defaults.max_body)")
        if data:
            self.parts.append(data)

    def result(self) -> bytes:
        if self.z is not None:
            self._add(self.z.flush())
        return b"".join(self.parts)


class _PoolPerOrigin(httpx.AsyncBaseTransport):
    """Routes each request to a small pool of its origin's own. Pools are made on demand; once an
    origin has nothing in flight its pool is kept for reuse, and the least recently used idle pools
    beyond ``keep_idle`` are closed, so memory follows concurrency, not the number of feeds."""

    def __init__(self, make: Callable[[], httpx.AsyncBaseTransport], keep_idle: int = 256,
                 via_proxy: Callable[[httpx.URL], httpx.AsyncBaseTransport | None] = lambda url: None) -> None:
        self._make = make
        self.keep_idle = keep_idle
        self._via_proxy = via_proxy
        self._busy: dict[Origin, list] = {}  # origin -> [pool, requests in flight]
        self._idle: OrderedDict[Origin, httpx.AsyncBaseTransport] = OrderedDict()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if (proxy := self._via_proxy(url)) is not None:
            return await proxy.handle_async_request(request)
        key = origin(url)
        entry = self._busy.get(key)
        if entry is None:
            pool = self._idle.pop(key, None) or self._make()
            entry = self._busy[key] = [pool, 0]
        entry[1] += 1
        try:
            response = await entry[0].handle_async_request(request)
        except BaseException:
            await self._release(key)
            raise
        response.stream = _Released(response.stream, lambda: self._release(key))
        return response

    async def _release(self, key: Origin) -> None:
        entry = self._busy[key]
        entry[1] -= 1
        if entry[1]:
            return
        del self._busy[key]
        self._idle[key] = entry[0]
        while len(self._idle) > self.keep_idle:
            _, pool = self._idle.popitem(last=False)
            await pool.aclose()

    @property
    def pools(self) -> int:
        return len(self._busy) + len(self._idle)

    async def aclose(self) -> None:
        pools = [e[0] for e in self._busy.values()] + list(self._idle.values())
        self._busy.clear()
        self._idle.clear()
        await asyncio.gather(*(p.aclose() for p in pools), return_exceptions=True)


class _Released(httpx.AsyncByteStream):
    """A response body that tells its origin's pool when it is done with (read or abandoned)."""

    def __init__(self, stream: httpx.AsyncByteStream, done: Callable[[], object]) -> None:
        self._stream = stream
        self._done: Callable[[], object] | None = done

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            done, self._done = self._done, None
            if done is not None:
                await done()  # type: ignore[misc]


class _EnvironmentProxies:
    """HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY (any case), read once, as curl and urllib read them.
    One transport per proxy URL, shared by every origin that goes through it."""

    def __init__(self, make: Callable[[str], httpx.AsyncBaseTransport]) -> None:
        self._env = urllib.request.getproxies_environment()  # {"http": url, "https": url, "all": url, "no": hosts}
        self._make = make
        self._transports: dict[str, httpx.AsyncBaseTransport] = {}

    def transport_for(self, url: httpx.URL) -> httpx.AsyncBaseTransport | None:
        if not self._env:
            return None
        proxy = self._env.get(url.scheme) or self._env.get("all")
        if not proxy or urllib.request.proxy_bypass_environment(url.host, self._env):  # type: ignore[attr-defined]
            return None
        if proxy not in self._transports:
            try:
                self._transports[proxy] = self._make(proxy)
            except (ValueError, ImportError):  # e.g. socks5:// without httpx's socks extra
                # (The proxy URL itself is not repeated: it may hold a password.)
                raise FetchError(f"cannot use the proxy named by {url.scheme.upper()}_PROXY / ALL_PROXY: use an "
                                 "http:// or https:// proxy URL") from None
        return self._transports[proxy]

    async def aclose(self) -> None:
        for transport in self._transports.values():
            await transport.aclose()
        self._transports.clear()


class _Cookies(httpx.Cookies):
    """httpx's cookie jar, minus its cost when a response sets none: httpx wraps every response in urllib
    request/response shims to look for Set-Cookie, ~7% of the CPU of a conditional GET."""

    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers or "set-cookie2" in response.headers:
            super().extract_cookies(response)


class Fetcher:
    """Shared HTTP client for all sources. Create once, ``await aclose()`` at the end."""

    def __init__(self, *, timeout: float = 30.0, max_body: int = 10_000_000, max_redirects: int = 5,
                 per_host: int = 4, environ: Mapping[str, str] = os.environ) -> None:
        self.environ = environ  # where feeds' header values and credentials are read, at each request
        self.timeout = timeout
        self.max_body = max_body
        self.max_redirects = max_redirects
        self.per_host = per_host
        ctx = ssl.create_default_context()  # one TLS context for every pool: making one costs ~20 ms
        # The per-host semaphore below already keeps each origin to `per_host` requests at a time.
        limits = httpx.Limits(max_connections=per_host, max_keepalive_connections=per_host)
        backend = AsyncioBackend()

        def origin_pool() -> httpx.AsyncBaseTransport:
            transport = httpx.AsyncHTTPTransport(verify=ctx, limits=limits)
            # The pool httpx would build, on asyncio streams instead of anyio's: see feedrelay.ingest.netio.
            transport._pool = httpcore.AsyncConnectionPool(
                ssl_context=ctx, max_connections=per_host, max_keepalive_connections=per_host,
                keepalive_expiry=limits.keepalive_expiry, network_backend=backend)
            return transport

        self._proxies = _EnvironmentProxies(lambda url: httpx.AsyncHTTPTransport(proxy=url, verify=ctx))
        self._pools = _PoolPerOrigin(origin_pool, via_proxy=self._proxies.transport_for)
        http_timeout = httpx.Timeout(timeout, connect=min(timeout, 10.0), pool=None)
        # trust_env=False: httpx ignores environment proxies once it is given a transport, so _EnvironmentProxies
        # reads them; and nothing else (~/.netrc credentials) should come from the environment.
        self._client = httpx.AsyncClient(verify=ctx, transport=self._pools, timeout=http_timeout,
                                         follow_redirects=False, trust_env=False,
                                         headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"})
        self._client._cookies = _Cookies()  # httpx's setter would wrap it back into a plain Cookies
        self._host_slots: defaultdict[Origin, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(per_host))

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._proxies.aclose()

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def get(self, url: str, *, etag: str | None = None, last_modified: str | None = None,
                  headers: dict[str, str] | None = None, accept: str | None = None,
                  options: HttpOptions | None = None) -> Response:
        """GET with validators; returns 200 with the body or 304. Raises :class:`FetchError`.

        ``options`` are the feed's own headers, basic auth and User-Agent, read from the environment now. Like
        ``headers``, they go to the URL's origin only: a redirect elsewhere gets the User-Agent and Accept alone."""
        request_headers = self._feed_headers(options) if options else {}
        request_headers.update(headers or {})
        if etag:
            request_headers["If-None-Match"] = etag
        if last_modified:
            request_headers["If-Modified-Since"] = last_modified
        if accept:
            request_headers["Accept"] = accept
        return await self._follow(url, request_headers)

    def _feed_headers(self, options: HttpOptions) -> dict[str, str]:
        """The feed's configured headers with their values. Errors name the variable, never its value."""
        out: dict[str, str] = {}
        for name, var in options.headers:
            out[name] = self._secret(var, f"the value of the feed's {name} header")
        if options.username_env:
            user = self._secret(options.username_env, "the feed's basic auth user name")
            password = self._secret(options.password_env, "the feed's basic auth password")
            if ":" in user:
                raise FetchError(f"${options.username_env} holds a ':', which basic auth cannot carry in a user name",
                                 config_problem=True)
            out["Authorization"] = "Basic " + basic_credentials(user, password)
        if options.user_agent:
            out["User-Agent"] = options.user_agent
        return out

    def _secret(self, var: str, what: str) -> str:
        value = self.environ.get(var, "").strip()  # a trailing newline from an env file is not part of it
        if not value:
            # Sending the request without it would only earn a 401 or 403 that points nowhere.
            raise FetchError(f"${var} is not set ({what}): set it in feedrelay's environment", config_problem=True)
        if not value.isascii() or _CONTROL.search(value):
            raise FetchError(f"${var} ({what}) holds a line break, a control or a non-ASCII character, which an HTTP "
                             "header cannot carry", config_problem=True)
        return value

    async def _follow(self, url: str, headers: dict[str, str]) -> Response:
        seen: list[str] = []
        permanent = True  # every hop so far was 301/308
        for _ in range(self.max_redirects + 1):
            seen.append(url)
            result = await self._one(url, headers)
            if isinstance(result, Response):
                if permanent and len(seen) > 1:
                    result.moved_to = url
                return result
            status, location = result
            permanent = permanent and status in _PERMANENT
            target = urljoin(url, location)
            if urlsplit(target).scheme.lower() not in ("http", "https"):
                raise FetchError(f"redirect to a non-http(s) URL refused: {_scheme(target)}:…")
            if target in seen:
                raise FetchError(f"redirect loop at {_safe(target)}")
            if origin(target) != origin(url):
                # Credentials (NVD's apiKey, a feed's headers and basic auth) and validators belong to the original
                # origin: another host, port or scheme (https → http included) gets only the harmless headers,
                # for the rest of the chain.
                headers = {k: v for k, v in headers.items() if k.lower() in _PORTABLE_HEADERS}
            url = target
        raise FetchError(f"more than {self.max_redirects} redirects (defaults.max_redirects)")

    async def _one(self, url: str, headers: dict[str, str]) -> Response | tuple[int, str]:
        """One request: a Response, or a redirect's (status, Location)."""
        client = self._client
        async with self._host_slots[origin(url)]:
            try:
                # The total timeout starts once we hold a slot: waiting our turn is not the server's fault.
                async with asyncio.timeout(self.timeout), client.stream("GET", url, headers=headers) as resp:
                    return await self._read(url, resp)
            except TimeoutError:
                raise FetchError(f"timed out after {self.timeout:g}s (defaults.timeout)") from None
            except httpx.HTTPError as exc:
                raise FetchError(_describe(exc)) from None
            except httpx.InvalidURL as exc:
                # httpx builds the redirect target itself and rejects e.g. "javascript:alert(1)".
                raise FetchError(f"refused a non-http(s) or malformed redirect target: {exc}") from None

    async def _read(self, url: str, resp: httpx.Response) -> Response | tuple[int, str]:
        status = resp.status_code
        lower = {k.lower(): v for k, v in resp.headers.items()}
        if status in _REDIRECTS:
            location = resp.headers.get("location")
            if not location:
                raise FetchError(f"HTTP {status} redirect without a Location header", status=status)
            return status, location
        if status == 304:
            # A 304 has no body, but the connection goes back to the pool only once the response has been
            # read to its end; without this, every conditional GET opened a new connection.
            await resp.aread()
            return Response(url=url, status=304, headers=lower)
        if status != 200:
            raise FetchError(f"HTTP {status} {resp.reason_phrase}".strip(), status=status,
                             retry_after=retry_after_seconds(resp.headers.get("retry-after")), headers=lower)
        length = resp.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body and not resp.headers.get("content-encoding"):
            raise FetchError(f"response body of {int(length):,} bytes exceeds the {self.max_body:,}-byte limit "
                             "(defaults.max_body)")
        decoder = _Decoder(resp.headers.get("content-encoding", ""), self.max_body)
        async for chunk in resp.aiter_raw(_CHUNK):
            decoder.feed(chunk)
        return Response(url=url, status=200, body=decoder.result(), headers=lower)


def origin(url: str | httpx.URL) -> Origin:
    """(scheme, host, port) with the scheme's default port filled in: what `per_host` limits, what gets a connection
    pool of its own, and what a redirect must keep for a feed's own headers and credentials to follow it. The one
    definition: the fetcher, its pools and the scheduler all use it."""
    if isinstance(url, httpx.URL):  # a request's, parsed already: str() and a new parse cost ~15 µs a request
        return url.scheme, url.raw_host.decode("ascii"), url.port or _DEFAULT_PORTS.get(url.scheme)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        port = None
    host = (parts.hostname or "").lower()
    if not host.isascii():  # an IDN: as the request's URL has it ("xn--…"), by httpx's own IDNA rules
        with contextlib.suppress(httpx.InvalidURL, UnicodeError):
            host = httpx.URL(url).raw_host.decode("ascii")
    return scheme, host, port


def _scheme(url: str) -> str:
    return urlsplit(url).scheme[:20]


def public_url(url: str) -> str:
    """A URL to show (logs, status, alerts): no userinfo, and a query (which may hold a token) shown as ``?…``."""
    parts = urlsplit(url)
    return _safe(url) + ("?…" if parts.query else "") if parts.scheme else url


def _safe(url: str) -> str:
    """A URL for messages: no userinfo, no query (which may hold tokens)."""
    p = urlsplit(url)
    return f"{p.scheme}://{p.hostname or ''}{':' + str(p.port) if p.port else ''}{p.path}"


def _describe(exc: httpx.HTTPError) -> str:
    kind = {
        httpx.ConnectTimeout: "connection timed out",
        httpx.ReadTimeout: "server stopped sending (read timeout)",
        httpx.ConnectError: "cannot connect",
        httpx.RemoteProtocolError: "server broke the HTTP protocol",
        httpx.UnsupportedProtocol: "unsupported URL",
        httpx.TooManyRedirects: "too many redirects",
    }
    for cls, text in kind.items():
        if isinstance(exc, cls):
            detail = str(exc).strip()
            return f"{text}: {detail}" if detail else text
    return f"{type(exc).__name__}: {exc}".rstrip(": ")
