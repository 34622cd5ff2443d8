"""Local HTTP servers for tests (stdlib only): a feed host and a fake Slack.

Both listen on 127.0.0.1 on an ephemeral port, serve from daemon threads, speak HTTP/1.1 with
keep-alive, and work as context managers or via start()/stop().
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import ssl
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self, cast
from urllib.parse import parse_qs, urlsplit

Handler = Callable[[BaseHTTPRequestHandler], None]


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # raw request target, query string included
    headers: dict[str, str]  # lowercase keys
    time: float  # time.monotonic() on arrival


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, app: _App) -> None:
        super().__init__(("127.0.0.1", 0), _RequestHandler)
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self.connections_opened = 0  # TCP connections accepted so far (keep-alive reuse shows here)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
            self.connections_opened += 1
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut open (e.g. keep-alive) connections, so a stopped server really stops answering."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up on hostile handlers are expected; report anything else.
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # idle keep-alive connections are closed after this many seconds

    def _dispatch(self) -> None:
        cast(_HTTPServer, self.server).app._dispatch(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _read_body(h: BaseHTTPRequestHandler) -> bytes:
    length = h.headers.get("Content-Length")
    if length is None:
        if h.command in ("POST", "PUT"):
            h.close_connection = True  # unknown framing: do not reuse the connection
        return b""
    return h.rfile.read(int(length))


def _send(
    h: BaseHTTPRequestHandler,
    status: int,
    body: bytes = b"",
    content_type: str = "text/plain; charset=utf-8",
    headers: dict[str, str] | None = None,
) -> None:
    h.send_response(status)
    merged = {"Content-Type": content_type} if status != 304 else {}
    for name, value in (headers or {}).items():
        merged = {k: v for k, v in merged.items() if k.lower() != name.lower()} | {name: value}
    for name, value in merged.items():
        h.send_header(name, value)
    if status != 304:
        h.send_header("Content-Length", str(len(body)))
    if h.close_connection:
        h.send_header("Connection", "close")
    h.end_headers()
    if status != 304 and h.command != "HEAD":
        h.wfile.write(body)


def _reason(status: int) -> bytes:
    with contextlib.suppress(ValueError):
        return f"{HTTPStatus(status).phrase}\n".encode()
    return f"HTTP {status}\n".encode()


def _send_json(h: BaseHTTPRequestHandler, payload: dict[str, Any], status: int = 200, **headers: str) -> None:
    _send(h, status, json.dumps(payload).encode(), "application/json; charset=utf-8", headers)


def redirect_to(location: str, status: int = 302) -> Handler:
    """A FeedServer handler that answers with a redirect (for set_handler)."""

    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return handler


class _App:
    """Lifecycle shared by both servers."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._scheme = "http"

    def start(self, tls: ssl.SSLContext | None = None) -> Self:
        """Serve on 127.0.0.1; over TLS with this server-side context if given (URLs become https://)."""
        if self._httpd is None:
            self._httpd = _HTTPServer(self)
            if tls is not None:
                self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
                self._scheme = "https"
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread, self._httpd, self._thread = self._httpd, self._thread, None, None
        if httpd is not None:
            httpd.shutdown()
            httpd.close_connections()
            httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return self._httpd.server_address[1]

    def url(self, path: str = "/") -> str:
        return f"{self._scheme}://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def drop_connections(self) -> None:
        """Close open keep-alive connections from the server's side, as servers do with idle ones."""
        if self._httpd is not None:
            self._httpd.close_connections()

    @property
    def connections_opened(self) -> int:
        return self._httpd.connections_opened if self._httpd else 0

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class _Resource:
    body: bytes
    content_type: str
    etag: str | None
    last_modified: str | None
    status: int
    headers: dict[str, str]
    delay: float


class FeedServer(_App):
    """Serves canned feed bodies with ETag / Last-Modified revalidation, or custom handlers."""

    def __init__(self) -> None:
        super().__init__()
        self._routes: dict[str, _Resource | Handler] = {}
        self._versions: dict[str, tuple[str, int]] = {}  # path -> (body digest, last-modified epoch)
        self._requests: list[Request] = []

    def set(
        self,
        path: str,
        body: bytes,
        *,
        content_type: str = "application/rss+xml; charset=utf-8",
        etag: bool = True,
        last_modified: bool = True,
        status: int = 200,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Serve `body` at `path` (exact request target, or its path part).

        ETag is strong and derived from the body. Last-Modified only changes when the body for
        `path` changes (always by >= 1 s, since HTTP dates have second resolution).
        If-None-Match (weak comparison, `*` allowed) takes precedence over If-Modified-Since, which
        must equal Last-Modified exactly (like nginx's default). 304s only replace status 200.
        """
        digest = hashlib.sha256(body).hexdigest()
        with self._lock:
            previous = self._versions.get(path)
            if previous is not None and previous[0] == digest:
                stamp = previous[1]
            else:
                stamp = max(int(time.time()), previous[1] + 1 if previous else 0)
                self._versions[path] = (digest, stamp)
            self._routes[path] = _Resource(
                body=body,
                content_type=content_type,
                etag=f'"{digest[:32]}"' if etag else None,
                last_modified=formatdate(stamp, usegmt=True) if last_modified else None,
                status=status,
                headers=dict(headers or {}),
                delay=delay,
            )

    def set_handler(self, path: str, fn: Handler) -> None:
        """`fn(handler)` writes the whole response (and may read the request body).

        The response goes out as HTTP/1.0 and the connection is closed once `fn` returns, so bodies
        need no Content-Length; set `handler.protocol_version = "HTTP/1.1"` in `fn` before
        `send_response` to send chunked bodies.
        """
        with self._lock:
            self._routes[path] = fn

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def hits(self, path: str) -> int:
        """Requests whose target, or its path part, is `path`."""
        with self._lock:
            return self._hits_locked(path)

    def wait_for_hits(self, path: str, count: int, timeout: float = 5.0) -> None:
        with self._lock:
            if not self._lock.wait_for(lambda: self._hits_locked(path) >= count, timeout):
                raise TimeoutError(f"{path}: {self._hits_locked(path)} hits, wanted {count}")

    def _hits_locked(self, path: str) -> int:
        return sum(1 for r in self._requests if path in (r.path, urlsplit(r.path).path))

    def clear(self) -> None:
        """Forget recorded requests (routes are kept)."""
        with self._lock:
            self._requests.clear()

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        headers = {k.lower(): v for k, v in h.headers.items()}
        with self._lock:
            self._requests.append(Request(h.command, h.path, headers, time.monotonic()))
            self._lock.notify_all()
            route = self._routes.get(h.path) or self._routes.get(urlsplit(h.path).path)
        if callable(route):
            # HTTP/1.0 status line: the client expects the close, and close-delimited bodies work.
            h.protocol_version = "HTTP/1.0"
            try:
                route(h)
            finally:
                h.close_connection = True
            return
        _read_body(h)
        if route is None:
            _send(h, 404, b"not found\n")
            return
        if h.command not in ("GET", "HEAD"):
            _send(h, 405, b"method not allowed\n", headers={"Allow": "GET, HEAD"})
            return
        if route.delay:
            time.sleep(route.delay)
        validators = {"ETag": route.etag, "Last-Modified": route.last_modified}
        out = {k: v for k, v in validators.items() if v is not None} | route.headers
        if route.status == 200 and self._not_modified(route, headers):
            _send(h, 304, headers=out)
        else:
            _send(h, route.status, route.body, route.content_type, out)

    @staticmethod
    def _not_modified(route: _Resource, headers: dict[str, str]) -> bool:
        if "if-none-match" in headers:
            tags = {t.strip().removeprefix("W/") for t in headers["if-none-match"].split(",")}
            return route.etag is not None and ("*" in tags or route.etag in tags)
        ims = headers.get("if-modified-since")
        return route.last_modified is not None and ims == route.last_modified


@dataclass(frozen=True)
class Post:
    channel: str  # as sent, or "webhook:<name>"
    text: str | None
    blocks: list[Any] | None
    payload: dict[str, Any]  # the parsed request payload
    ts: str
    time: float  # time.monotonic() on arrival

    @property
    def thread_ts(self) -> str | None:
        """The parent's ts for a reply in a thread; None for a message in the channel."""
        value = self.payload.get("thread_ts")
        return str(value) if value else None

    @property
    def broadcast(self) -> bool:
        return str(self.payload.get("reply_broadcast", "")).lower() in ("true", "1")


@dataclass(frozen=True)
class Edit:
    """A chat.update that Slack accepted: the message ``ts`` in channel ``channel_id`` now reads so."""

    channel_id: str
    ts: str
    text: str | None
    blocks: list[Any] | None
    time: float


@dataclass(frozen=True)
class Attempt:
    """Every request FakeSlack received, whatever the outcome."""

    endpoint: str  # API method ("chat.postMessage", "auth.test", ...) or "webhook"
    channel: str | None
    status: int | None  # HTTP status; None when the connection was dropped
    outcome: str  # "ok", "ratelimited", "http_503", "outage", "dropped", or the Slack error code
    scripted: bool  # the outcome came from a .script() item (a "delay" item counts)
    time: float  # time.monotonic() on arrival
    retry_after: float | None = None


ScriptItem = tuple[Any, ...]
_SCRIPT_KINDS = {"429": 2, "500": 1, "503": 1, "error": 2, "delay": 2, "drop": 1}
# HTTP status used for webhook errors (webhooks answer errors as plain text, not JSON).
_WEBHOOK_ERROR_STATUS = {
    "invalid_payload": 400,
    "no_text": 400,
    "invalid_token": 403,
    "action_prohibited": 403,
    "channel_not_found": 404,
    "no_service": 404,
    "channel_is_archived": 410,
}
_AUTH_TEST = {
    "ok": True,
    "url": "https://test.slack.com/",
    "team": "Test Team",
    "team_id": "T0TEST",
    "user": "feedrelay",
    "user_id": "U0TEST",
    "bot_id": "B0TEST",
}


@dataclass
class _Call:
    endpoint: str
    arrived: float
    channel: str | None = None
    token: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # malformed request, detected while parsing


class FakeSlack(_App):
    """Slack Web API (chat.postMessage with threads, chat.update, auth.test) and incoming webhooks, with scripted
    faults. chat.postMessage answers with the channel's ID (``channel_id(name)``), which chat.update requires, as
    Slack's does; a reply's ``thread_ts`` must be a message of that channel.

    Web API errors are HTTP 200 {"ok": false, "error": ...}, as Slack does. Webhook errors are
    plain-text bodies with a 4xx status (e.g. 404 "no_service"); a scripted ("429", n) on a webhook
    answers 429 + Retry-After with the text body "rate_limited".
    """

    def __init__(self, token: str = "xoxb-test-token") -> None:
        super().__init__()
        self.token = token
        self.unknown_channels: set[str] = set()
        self.unknown_webhooks: set[str] = set()
        self.delay = 0.0  # seconds slept before every answer
        self._outage: int | None = None
        self._scripts: dict[str | None, deque[ScriptItem]] = {}
        self._posts: list[Post] = []
        self._edits: list[Edit] = []
        self.uneditable: set[str] = set()  # ts of messages chat.update refuses with cant_update_message
        self._attempts: list[Attempt] = []
        self._ts = 1_700_000_000_000_000  # microseconds

    @property
    def api_url(self) -> str:
        return self.url("/api/")

    def webhook_url(self, name: str) -> str:
        return self.url(f"/webhook/{name}")

    def script(self, items: list[ScriptItem], channel: str | None = None) -> None:
        """Queue faults consumed FIFO, one per post (chat.postMessage or webhook) to `channel`.

        Channel-specific queues are used before the any-channel (None) queue. Items:
        ("429", retry_after), ("500",), ("503",), ("error", code), ("delay", seconds), ("drop",).
        """
        for item in items:
            if _SCRIPT_KINDS.get(item[0]) != len(item):
                raise ValueError(f"bad script item {item!r}")
        with self._lock:
            self._scripts.setdefault(channel, deque()).extend(items)

    def outage(self, status: int | None) -> None:
        """While set, every request answers `status` with a text body; None ends the outage."""
        self._outage = status

    @property
    def posts(self) -> list[Post]:
        with self._lock:
            return list(self._posts)

    @property
    def attempts(self) -> list[Attempt]:
        with self._lock:
            return list(self._attempts)

    @property
    def edits(self) -> list[Edit]:
        with self._lock:
            return list(self._edits)

    @staticmethod
    def channel_id(name: str) -> str:
        """The ID this fake Slack gives a channel posted to by name (an ID stays itself)."""
        if not name.startswith("#"):
            return name
        return "C" + hashlib.sha256(name.encode()).hexdigest()[:8].upper()

    def messages(self, channel: str) -> list[Post]:
        return [p for p in self.posts if p.channel == channel]

    def wait_for_posts(self, count: int, timeout: float = 5.0, channel: str | None = None) -> list[Post]:
        """Block until at least `count` posts (to `channel`, if given) exist; return them."""

        def matching() -> list[Post]:
            return [p for p in self._posts if channel is None or p.channel == channel]

        with self._lock:
            if not self._lock.wait_for(lambda: len(matching()) >= count, timeout):
                raise TimeoutError(f"{len(matching())} posts, wanted {count}")
            return matching()

    def unscript(self) -> None:
        """Drop the faults still scripted: Slack works again."""
        with self._lock:
            self._scripts.clear()

    def clear(self) -> None:
        """Forget posts, attempts and pending scripts (settings are kept)."""
        with self._lock:
            self._posts.clear()
            self._edits.clear()
            self._attempts.clear()
            self._scripts.clear()

    # --- request handling -------------------------------------------------------------------

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        arrived = time.monotonic()
        body = _read_body(h)
        path = urlsplit(h.path).path
        if path.startswith("/webhook/"):
            call = self._parse_webhook(path.removeprefix("/webhook/"), h, body, arrived)
        elif path.startswith("/api/"):
            call = self._parse_api(path.removeprefix("/api/"), h, body, arrived)
        else:
            _send(h, 404, b"not found\n")
            return
        if self.delay:
            time.sleep(self.delay)
        outage = self._outage
        if outage is not None:
            self._record(call, outage, "outage")
            _send(h, outage, _reason(outage))
            return
        item = self._next_script_item(call)
        if item is not None and item[0] == "delay":
            time.sleep(item[1])
        if item is not None and item[0] != "delay":
            self._answer_scripted(h, call, item)
        elif call.endpoint == "webhook":
            self._answer_webhook(h, call, scripted=item is not None)
        else:
            self._answer_api(h, call, scripted=item is not None)

    def _parse_api(self, method: str, h: BaseHTTPRequestHandler, body: bytes, arrived: float) -> _Call:
        call = _Call(method, arrived)
        auth = h.headers.get("Authorization", "")
        call.token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        content_type = h.headers.get("Content-Type", "")
        try:
            if content_type.startswith("application/json"):
                payload = json.loads(body or b"{}")
                if not isinstance(payload, dict):
                    raise ValueError("not an object")
            else:  # form-encoded (or a query string / empty body)
                query = urlsplit(h.path).query
                pairs = parse_qs(body.decode() or query, keep_blank_values=True)
                payload = {k: v[-1] for k, v in pairs.items()}
                if isinstance(payload.get("blocks"), str):
                    payload["blocks"] = json.loads(payload["blocks"])
                call.token = call.token or payload.get("token")
        except ValueError:
            call.error = "invalid_json" if content_type.startswith("application/json") else "invalid_blocks"
            return call
        call.payload = payload
        channel = payload.get("channel")
        call.channel = channel if isinstance(channel, str) else None
        return call

    def _parse_webhook(self, name: str, h: BaseHTTPRequestHandler, body: bytes, arrived: float) -> _Call:
        call = _Call("webhook", arrived, channel=f"webhook:{name}")
        try:
            if h.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
                body = parse_qs(body.decode()).get("payload", [""])[-1].encode()
            payload = json.loads(body)
            if not isinstance(payload, dict):
                raise ValueError("not an object")
            call.payload = payload
        except ValueError:
            call.error = "invalid_payload"
        return call

    def _next_script_item(self, call: _Call) -> ScriptItem | None:
        if call.endpoint not in ("chat.postMessage", "chat.update", "webhook"):
            return None
        with self._lock:
            for key in (call.channel, None) if call.channel is not None else (None,):
                queue = self._scripts.get(key)
                if queue:
                    return queue.popleft()
        return None

    def _answer_scripted(self, h: BaseHTTPRequestHandler, call: _Call, item: ScriptItem) -> None:
        webhook = call.endpoint == "webhook"
        kind = item[0]
        if kind == "drop":
            self._record(call, None, "dropped", scripted=True)
            h.close_connection = True
        elif kind == "429":
            retry_after = f"{item[1]:g}"
            self._record(call, 429, "ratelimited", scripted=True, retry_after=float(item[1]))
            if webhook:
                _send(h, 429, b"rate_limited", headers={"Retry-After": retry_after})
            else:
                _send_json(h, {"ok": False, "error": "ratelimited"}, 429, **{"Retry-After": retry_after})
        elif kind in ("500", "503"):
            status = int(kind)
            self._record(call, status, f"http_{status}", scripted=True)
            _send(h, status, _reason(status))
        else:  # ("error", code)
            self._fail(h, call, item[1], scripted=True)

    def _fail(self, h: BaseHTTPRequestHandler, call: _Call, error: str, scripted: bool) -> None:
        if call.endpoint == "webhook":
            status = _WEBHOOK_ERROR_STATUS.get(error, 400)
            self._record(call, status, error, scripted=scripted)
            _send(h, status, error.encode())
        else:
            self._record(call, 200, error, scripted=scripted)
            _send_json(h, {"ok": False, "error": error})

    def _answer_webhook(self, h: BaseHTTPRequestHandler, call: _Call, scripted: bool) -> None:
        name = (call.channel or "").removeprefix("webhook:")
        payload = call.payload
        if name in self.unknown_webhooks:
            self._fail(h, call, "no_service", scripted)
        elif call.error is not None:
            self._fail(h, call, call.error, scripted)
        elif not payload.get("text") and not payload.get("blocks"):
            self._fail(h, call, "no_text", scripted)
        else:
            self._store_post(call, scripted, 200)
            _send(h, 200, b"ok")

    def _answer_api(self, h: BaseHTTPRequestHandler, call: _Call, scripted: bool) -> None:
        if call.token != self.token:
            self._fail(h, call, "invalid_auth", scripted)
        elif call.endpoint == "auth.test":
            self._record(call, 200, "ok", scripted=scripted)
            _send_json(h, _AUTH_TEST)
        elif call.endpoint == "chat.update":
            self._answer_update(h, call, scripted)
        elif call.endpoint != "chat.postMessage":
            self._fail(h, call, "unknown_method", scripted)
        elif call.error is not None:
            self._fail(h, call, call.error, scripted)
        elif call.channel is None or call.channel in self.unknown_channels:
            self._fail(h, call, "channel_not_found", scripted)
        elif call.payload.get("blocks") is not None and not isinstance(call.payload["blocks"], list):
            self._fail(h, call, "invalid_blocks", scripted)
        elif not call.payload.get("text") and not call.payload.get("blocks"):
            self._fail(h, call, "no_text", scripted)
        elif call.payload.get("thread_ts") and not self._find(call.channel, str(call.payload["thread_ts"])):
            self._fail(h, call, "thread_not_found", scripted)
        else:
            post = self._store_post(call, scripted, 200)
            message: dict[str, Any] = {"type": "message", "text": post.text or "", "user": "U0TEST"}
            if post.blocks is not None:
                message["blocks"] = post.blocks
            message |= {"bot_id": "B0TEST", "ts": post.ts}
            _send_json(h, {"ok": True, "channel": self.channel_id(post.channel), "ts": post.ts, "message": message})

    def _find(self, channel: str | None, ts: str) -> Post | None:
        """The message ``ts`` posted to ``channel`` (by name or by the ID this fake gave it)."""
        with self._lock:
            return next((p for p in self._posts if p.ts == ts and channel is not None
                         and channel in (p.channel, self.channel_id(p.channel))), None)

    def _answer_update(self, h: BaseHTTPRequestHandler, call: _Call, scripted: bool) -> None:
        ts = str(call.payload.get("ts") or "")
        if call.channel is None or call.channel.startswith("#"):
            self._fail(h, call, "channel_not_found", scripted)  # chat.update takes an ID, not a #name
        elif not self._find(call.channel, ts) or ts in self.uneditable:
            self._fail(h, call, "message_not_found" if ts not in self.uneditable else "cant_update_message", scripted)
        elif not call.payload.get("text") and not call.payload.get("blocks"):
            self._fail(h, call, "no_text", scripted)
        else:
            blocks, text = call.payload.get("blocks"), call.payload.get("text")
            with self._lock:
                self._edits.append(Edit(call.channel, ts, text if isinstance(text, str) else None,
                                        blocks if isinstance(blocks, list) else None, call.arrived))
            self._record(call, 200, "ok", scripted=scripted)
            _send_json(h, {"ok": True, "channel": call.channel, "ts": ts, "text": text or ""})

    def _store_post(self, call: _Call, scripted: bool, status: int) -> Post:
        blocks = call.payload.get("blocks")
        text = call.payload.get("text")
        with self._lock:
            self._ts += 100
            ts = f"{self._ts // 1_000_000}.{self._ts % 1_000_000:06d}"
            post = Post(
                channel=call.channel or "",
                text=text if isinstance(text, str) else None,
                blocks=blocks if isinstance(blocks, list) else None,
                payload=call.payload,
                ts=ts,
                time=call.arrived,
            )
            self._posts.append(post)
            self._record(call, status, "ok", scripted=scripted)
            return post

    def _record(
        self,
        call: _Call,
        status: int | None,
        outcome: str,
        *,
        scripted: bool = False,
        retry_after: float | None = None,
    ) -> None:
        attempt = Attempt(call.endpoint, call.channel, status, outcome, scripted, call.arrived, retry_after)
        with self._lock:
            self._attempts.append(attempt)
            self._lock.notify_all()
