"""A fake Slack Web API for the benchmark: POST /api/chat.postMessage (JSON or form body) answers
``{"ok": true, "ts": ...}`` and records (channel, item link, arrival time). It never paces or fails:
pacing is feedrelay's job, and this fake only has to be fast and to record exactly what arrived."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

_LINK = re.compile(r"<(https?://[^|>]+)\|")
_TEXT_LINK = re.compile(r"(https?://\S+)\s*$")


@dataclass(frozen=True)
class Post:
    channel: str
    link: str  # the item link found in the message ("" if none)
    time: float  # time.time() on arrival


def item_link(payload: dict[str, Any]) -> str:
    """The relayed item's link: the first ``<url|title>`` of the first block, else the URL ending the text."""
    blocks = payload.get("blocks")
    if isinstance(blocks, str):
        with contextlib.suppress(ValueError):
            blocks = json.loads(blocks)
    if isinstance(blocks, list) and blocks:
        text = ((blocks[0] or {}).get("text") or {}).get("text", "")
        if m := _LINK.search(text):
            return m.group(1)
    m = _TEXT_LINK.search(str(payload.get("text") or ""))
    return m.group(1) if m else ""


class FakeSlack:
    def __init__(self, token: str = "xoxb-bench") -> None:
        self.token = token
        self.posts: list[Post] = []
        self.rejected = 0  # requests we could not make sense of (wrong token, bad body, unknown method)
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._ts = 0
        self._arrived = asyncio.Event()

    async def start(self) -> FakeSlack:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=256)
        return self

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            for w in list(self._writers):
                w.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    @property
    def api_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/api/"

    def clear(self) -> None:
        self.posts.clear()
        self.rejected = 0

    async def wait_for(self, count: int, timeout: float) -> bool:
        """Until at least ``count`` posts were recorded; False on timeout."""
        deadline = time.monotonic() + timeout
        while len(self.posts) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)
        return True

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                arrived = time.time()
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if line:
                        k, _, v = line.partition(":")
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                answer = self._answer(method, target, headers, body, arrived)
                data = json.dumps(answer).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
                             b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _answer(self, method: str, target: str, headers: dict[str, str], body: bytes,
                arrived: float) -> dict[str, Any]:
        path = target.split("?", 1)[0]
        ctype = headers.get("content-type", "")
        try:
            if ctype.startswith("application/json"):
                payload = json.loads(body or b"{}")
            else:
                payload = {k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        except ValueError:
            self.rejected += 1
            return {"ok": False, "error": "invalid_json"}
        auth = headers.get("authorization", "").removeprefix("Bearer ") or payload.get("token", "")
        if auth != self.token:
            self.rejected += 1
            return {"ok": False, "error": "invalid_auth"}
        if path == "/api/auth.test":
            return {"ok": True, "team": "Bench", "user": "feedrelay", "user_id": "U0BENCH", "bot_id": "B0BENCH"}
        if method != "POST" or path != "/api/chat.postMessage" or not isinstance(payload, dict):
            self.rejected += 1
            return {"ok": False, "error": "unknown_method"}
        channel = str(payload.get("channel", ""))
        self.posts.append(Post(channel, item_link(payload), arrived))
        self._arrived.set()
        self._ts += 1
        ts = f"1700000000.{self._ts:06d}"
        return {"ok": True, "channel": channel, "ts": ts, "message": {"type": "message", "ts": ts}}
