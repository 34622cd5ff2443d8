"""A feed farm: N generated RSS 2.0 feeds served over HTTP/1.1 from many loopback hosts.

Layout: feed ``i`` is served at ``http://127.0.0.{2 + i % hosts}:{port}/feed/{i}.xml``. Every host is a
separate listening socket on its own loopback address (the whole 127.0.0.0/8 range reaches ``lo`` on
Linux), so feedrelay's per-host concurrency limit (``[defaults] per_host``) and its per-origin
connection pools see ``hosts`` distinct sites — as in real life, where 10,000 feeds live on thousands
of hosts — instead of funnelling everything through one origin capped at ``per_host`` requests.

Each feed lists its newest ``window`` items (20 by default), newest first, with a few hundred bytes of
HTML description per item. Responses carry a strong ETag and a Last-Modified date and answer 304 to a
matching If-None-Match (or, without one, an identical If-Modified-Since), as nginx does. Bodies are
pre-rendered and gzip-compressed (served compressed when the client accepts gzip, as most publishers
do), so the farm spends its CPU on sockets, not on XML.

``validators = False`` stops sending ETag/Last-Modified and always answers 200 with the same bytes (the
"changed without validators" case). ``delay`` sleeps (asyncio.sleep) before every answer; ``host_delay``
overrides it for some hosts (a slow host). ``requests_at`` (when not None) records every feed request's
(feed, arrival time), for the daemon scenario's lateness.
:meth:`Farm.add_items` publishes new items and records when each first appeared (for latency).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import re
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, formatdate
from xml.sax.saxutils import escape

BASE_DATE = datetime(2024, 1, 1, tzinfo=UTC)
_FEED_PATH = re.compile(rb"^/feed/(\d+)\.xml(?:\?.*)?$")

_WORDS = (
    "async", "queues", "SQLite", "Postgres", "latency", "Kubernetes", "caching", "indexes", "Rust", "Python",
    "observability", "backpressure", "retries", "sharding", "TLS", "compilers", "migrations", "feature flags",
    "incident", "profiling", "memory", "garbage collection", "load balancing", "DNS", "edge", "tracing",
)
_TOPICS = ("databases", "python", "ops", "security", "networking", "performance", "culture", "frontend")
_PARAGRAPHS = (
    "We rebuilt the {a} pipeline around {b} and cut p99 latency in half. This post walks through what "
    "we measured, what surprised us, and the <code>{c}</code> settings we ended up shipping.",
    "Most teams reach for {a} first. We tried <em>{b}</em> instead &mdash; here is why it worked for a "
    "workload of 40,000 requests per second, and where it did not.",
    "A short story about {a}, a misconfigured {b} and a pager that would not stop. "
    "<a href=\"https://example.com/postmortems/{c}\">Read the full postmortem</a>.",
)


def _item_xml(feed: int, seq: int) -> tuple[str, str]:
    """(link, <item> XML) of item ``seq`` of feed ``feed``; deterministic, no RNG."""
    h = feed * 7919 + seq * 104729
    a, b, c = _WORDS[h % len(_WORDS)], _WORDS[(h // 7) % len(_WORDS)], _WORDS[(h // 13) % len(_WORDS)]
    slug = f"{seq}-{a}-and-{b}".lower().replace(" ", "-")
    link = f"https://blog{feed}.bench.example/posts/{slug}"
    title = f"Post {seq}: {a} & {b} at scale"
    paras = "".join(
        f"<p>{_PARAGRAPHS[(h + k) % len(_PARAGRAPHS)].format(a=a, b=b, c=c.replace(' ', '_'))}</p>" for k in range(2)
    )
    description = f'{paras}<p><img src="https://blog{feed}.bench.example/img/{seq}.png" alt="diagram"/></p>'
    pub = format_datetime(BASE_DATE + timedelta(hours=seq))
    cats = "".join(f"<category>{_TOPICS[(h + k) % len(_TOPICS)]}</category>" for k in range(2))
    xml = (
        f"<item><title>{escape(title)}</title><link>{link}</link>"
        f'<guid isPermaLink="true">{link}</guid><pubDate>{pub}</pubDate>'
        f"<dc:creator>Author {h % 17}</dc:creator>{cats}"
        f"<description><![CDATA[{description}]]></description></item>\n"
    )
    return link, xml


@dataclass
class FeedState:
    seqs: list[int] = field(default_factory=list)  # every item ever published, oldest first
    version: int = 0
    stamp: int = 0  # Last-Modified, epoch seconds; strictly increases on every change
    body: bytes = b""
    gz: bytes = b""
    etag: str = ""


@dataclass
class Stats:
    requests: int = 0
    ok: int = 0
    not_modified: int = 0
    not_found: int = 0
    bytes_out: int = 0


class Farm:
    def __init__(self, n_feeds: int, *, hosts: int = 64, window: int = 20, delay: float = 0.05,
                 use_gzip: bool = True) -> None:
        if not 1 <= hosts <= 250:
            raise ValueError("hosts must be between 1 and 250 (127.0.0.2 … 127.0.0.251)")
        self.n = n_feeds
        self.hosts = hosts
        self.window = window
        self.delay = delay
        self.host_delay: dict[int, float] = {}  # host index -> its own delay (a slow host)
        self.requests_at: list[tuple[int, float]] | None = None  # (feed, time.time() the request arrived)
        self.use_gzip = use_gzip
        self.validators = True
        self.feeds = [FeedState() for _ in range(n_feeds)]
        self.appeared: dict[str, float] = {}  # item link -> time.time() it was published (add_items only)
        self.served_200: dict[int, float] = {}  # feed -> time.time() of its last 200 answer
        self.stats = Stats()
        self._servers: list[asyncio.AbstractServer] = []
        self._ports: list[int] = []
        self._writers: set[asyncio.StreamWriter] = set()

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> Farm:
        for h in range(self.hosts):
            server = await asyncio.start_server(functools.partial(self._handle, h), self.address(h), 0, backlog=1024,
                                                reuse_address=True)
            self._servers.append(server)
            self._ports.append(server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        for s in self._servers:
            s.close()
        for w in list(self._writers):
            w.close()
        for s in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(s.wait_closed(), 2)
        self._servers.clear()

    @staticmethod
    def address(host: int) -> str:
        return f"127.0.0.{2 + host}"

    def url(self, feed: int) -> str:
        h = feed % self.hosts
        return f"http://{self.address(h)}:{self._ports[h]}/feed/{feed}.xml"

    # --- content --------------------------------------------------------------------------------

    def reset(self, items: int = 20, *, validators: bool = True) -> None:
        """Every feed lists ``items`` pre-existing items (seq 0 … items-1); history and stats cleared."""
        self.validators = validators
        self.appeared.clear()
        self.served_200.clear()
        self.stats = Stats()
        for i, f in enumerate(self.feeds):
            f.seqs = list(range(items))
            self._render(i)

    def snapshot(self) -> list[FeedState]:
        """Every feed's content and validators, to :meth:`restore` later (the same bytes, ETags and dates)."""
        return [replace(f, seqs=list(f.seqs)) for f in self.feeds]

    def restore(self, snapshot: list[FeedState]) -> None:
        self.feeds = [replace(f, seqs=list(f.seqs)) for f in snapshot]
        self.appeared.clear()
        self.served_200.clear()

    def add_items(self, feed_ids: list[int], k: int) -> list[tuple[int, str]]:
        """Publish ``k`` new items in each of ``feed_ids``; returns (feed, link) of each new item."""
        new: list[tuple[int, str]] = []
        for i in feed_ids:
            f = self.feeds[i]
            start = f.seqs[-1] + 1 if f.seqs else 0
            for seq in range(start, start + k):
                f.seqs.append(seq)
                new.append((i, _item_xml(i, seq)[0]))
            self._render(i)
        now = time.time()
        for _, link in new:
            self.appeared[link] = now
        return new

    def listed(self, feed: int) -> list[str]:
        """Links currently in the feed, newest first."""
        return [_item_xml(feed, s)[0] for s in reversed(self.feeds[feed].seqs[-self.window:])]

    def body(self, feed: int) -> bytes:
        return self.feeds[feed].body

    def _render(self, i: int) -> None:
        f = self.feeds[i]
        f.version += 1
        f.stamp = max(int(time.time()), f.stamp + 1)
        built = formatdate(f.stamp, usegmt=True)
        items = "".join(_item_xml(i, s)[1] for s in reversed(f.seqs[-self.window:]))
        text = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">\n<channel>\n'
            f"<title>Bench Blog {i}</title><link>https://blog{i}.bench.example/</link>\n"
            f"<description>Generated feed {i} for feedrelay benchmarks</description>"
            f"<language>en-us</language><lastBuildDate>{built}</lastBuildDate>\n"
            f"{items}</channel>\n</rss>\n"
        )
        f.body = text.encode()
        f.gz = gzip.compress(f.body, compresslevel=1, mtime=0) if self.use_gzip else b""
        f.etag = f'"f{i}-v{f.version}"'

    # --- HTTP -----------------------------------------------------------------------------------

    def host_of(self, feed: int) -> int:
        return feed % self.hosts

    async def _handle(self, host: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                parts = lines[0].split(b" ")
                if len(parts) != 3:
                    break
                method, target = parts[0], parts[1]
                headers: dict[bytes, bytes] = {}
                for line in lines[1:]:
                    if line:
                        k, _, v = line.partition(b":")
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get(b"content-length", b"0") or 0)
                if length:
                    await reader.readexactly(length)
                if self.requests_at is not None and (m := _FEED_PATH.match(parts[1])):
                    self.requests_at.append((int(m.group(1)), time.time()))
                delay = self.host_delay.get(host, self.delay)
                if delay:
                    await asyncio.sleep(delay)
                writer.write(self._respond(method, target, headers))
                await writer.drain()
                if headers.get(b"connection", b"").lower() == b"close":
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _respond(self, method: bytes, target: bytes, headers: dict[bytes, bytes]) -> bytes:
        st = self.stats
        st.requests += 1
        m = _FEED_PATH.match(target)
        i = int(m.group(1)) if m else -1
        if method not in (b"GET", b"HEAD") or not 0 <= i < self.n:
            st.not_found += 1
            return b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nnot found\n"
        f = self.feeds[i]
        validators = ""
        if self.validators:
            lm = formatdate(f.stamp, usegmt=True)
            validators = f"ETag: {f.etag}\r\nLast-Modified: {lm}\r\n"
            inm = headers.get(b"if-none-match")
            if inm is not None:
                tags = {t.strip().removeprefix(b"W/") for t in inm.split(b",")}
                fresh = f.etag.encode() in tags or b"*" in tags
            else:
                fresh = headers.get(b"if-modified-since") == lm.encode()
            if fresh:
                st.not_modified += 1
                return f"HTTP/1.1 304 Not Modified\r\n{validators}\r\n".encode()
        gz = self.use_gzip and b"gzip" in headers.get(b"accept-encoding", b"")
        body = f.gz if gz else f.body
        st.ok += 1
        st.bytes_out += len(body)
        self.served_200[i] = time.time()
        encoding = "Content-Encoding: gzip\r\n" if gz else ""
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml; charset=utf-8\r\n"
            f"{encoding}{validators}Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        return head if method == b"HEAD" else head + body
