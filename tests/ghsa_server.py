"""A loopback stand-in for GitHub's `GET /advisories`, serving real fixture advisories with GitHub's cursor paging
(`Link: <…after=CURSOR>; rel="next"`), its `updated` filter and sort, and its rate-limit answers."""

from __future__ import annotations

import base64
import copy
import json
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.servers import FeedServer

FIXTURES = Path(__file__).parent / "fixtures" / "ghsa"
PATH = "/advisories"


def fixture_advisories() -> list[dict[str, Any]]:
    """The real advisories: three npm (lodash) and one pip (django)."""
    return [*json.loads((FIXTURES / "libman-audit-lodash-page.json").read_text()),
            *json.loads((FIXTURES / "GHSA-rf4j-j272-fj86-rest.json").read_text())]


def advisory(ghsa_id: str) -> dict[str, Any]:
    return copy.deepcopy(next(a for a in fixture_advisories() if a["ghsa_id"] == ghsa_id))


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class FakeGitHub:
    """Serves `advisories` (type=reviewed only, as GitHub does by default) in pages of `page_size`."""

    def __init__(self, server: FeedServer, advisories: list[dict[str, Any]], *, page_size: int = 2,
                 token: str | None = None) -> None:
        self.server = server
        self.advisories = advisories
        self.page_size = page_size
        self.token = token  # when set, requests must carry it (Authorization: Bearer)
        self.queries: list[dict[str, str]] = []
        self.headers: list[dict[str, str]] = []
        self.failures: list[tuple[int, dict[str, str], bytes]] = []  # answers to the next requests, in order
        self.next_host: str | None = None  # a host to put in the next links instead of this server's
        self.lock = threading.Lock()
        server.set_handler(PATH, self._handle)

    @property
    def url(self) -> str:
        return self.server.url(PATH)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(h.path).query).items()}
        with self.lock:
            self.queries.append(query)
            self.headers.append({k.lower(): v for k, v in h.headers.items()})
            failure = self.failures.pop(0) if self.failures else None
        if failure:
            self._send(h, failure[0], failure[2], failure[1])
            return
        if h.headers.get("Accept") != "application/vnd.github+json" or not h.headers.get("X-GitHub-Api-Version"):
            self._send(h, 415, b'{"message": "Unsupported Media Type"}')
            return
        if self.token is not None and h.headers.get("Authorization") != f"Bearer {self.token}":
            self._send(h, 401, b'{"message": "Bad credentials"}')
            return
        rows = [a for a in self.advisories if a.get("type") == query.get("type", "reviewed")]
        if since := query.get("updated", ""):
            if not since.startswith(">="):
                self._send(h, 422, b'{"message": "Validation Failed"}')
                return
            rows = [a for a in rows if _when(a["updated_at"]) >= _when(since[2:])]
        if query.get("sort") == "updated":
            rows.sort(key=lambda a: a["updated_at"], reverse=query.get("direction", "desc") == "desc")
        start = int(base64.b64decode(query["after"]).decode()) if "after" in query else 0
        size = min(int(query.get("per_page", "30")), self.page_size)
        page = rows[start:start + size]
        headers = {}
        if start + size < len(rows):
            cursor = base64.b64encode(str(start + size).encode()).decode()
            rest = urlencode({**{k: v for k, v in query.items() if k != "after"}, "after": cursor})
            host = self.next_host or f"127.0.0.1:{self.server.port}"
            headers["Link"] = f'<http://{host}{PATH}?{rest}>; rel="next"'
        self._send(h, 200, json.dumps(page).encode(), headers)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)
