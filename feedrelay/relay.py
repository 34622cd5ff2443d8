"""The relay: wires configuration, storage, sources, sinks and the deliverer together.

Library users (and the CLI) drive it with :meth:`Relay.poll_all`, :meth:`Relay.drain` and
:meth:`Relay.reload`; the daemon in :mod:`feedrelay.daemon` only adds a schedule around it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Mapping
from typing import TextIO
from urllib.parse import urlsplit

from .config import Config, Feed
from .deliverer import ChannelReport, Deliverer
from .fetch import Fetcher
from .outbox import Outbox
from .pipeline import FeedReport, poll_feed
from .sinks import Sinks
from .sources import Source, make_source
from .store import Store
from .workers import ParsePool

log = logging.getLogger(__name__)

PARALLEL_PARSE_MIN_FEEDS = 20
# Polls in progress at once (fetch → parse → store). Beyond this, extra polls wait without holding a body,
# a parse or a connection, so memory follows this number rather than the number of feeds.
POLL_CONCURRENCY = 256


def interleave_by_host(feeds: Iterable[Feed]) -> list[Feed]:
    """Feeds in round-robin order over their hosts, so that a host with many feeds (which may be polled only
    `per_host` at a time) does not hold up the feeds of every other host queued behind it."""
    by_host: dict[str, list[Feed]] = {}
    for feed in feeds:
        by_host.setdefault((urlsplit(feed.url).hostname or "").lower(), []).append(feed)
    queues = list(by_host.values())
    return [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]


class Relay:
    def __init__(self, config: Config, db_path: str | None = None, *, environ: Mapping[str, str] = os.environ,
                 stream: TextIO | None = None) -> None:
        self.config = config
        self.db_path = db_path or config.database
        self.environ = environ
        self.stream = stream
        self.store: Store
        self.outbox: Outbox
        self.fetcher: Fetcher
        self.sinks: Sinks
        self.deliverer: Deliverer
        self._sources: dict[str, tuple[Feed, Source]] = {}
        self.parse_pool = ParsePool()
        self._daemon = False
        self._poll_slots = asyncio.Semaphore(POLL_CONCURRENCY)

    async def __aenter__(self) -> Relay:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        self.store = Store(self.db_path)
        self.outbox = Outbox(self.store)
        self.store.sync_feeds((f.name, f.url, f.kind) for f in self.config.feeds)
        # A (re)start is when someone has fixed a failing channel: try it at once. Rate-limit waits stay.
        self.outbox.resume_failing()
        d = self.config.defaults
        self.fetcher = Fetcher(timeout=d.timeout, max_body=d.max_body, max_redirects=d.max_redirects,
                               per_host=d.per_host)
        await self._open_sinks()

    async def _open_sinks(self) -> None:
        self.sinks = Sinks(self.config, self.environ, self.stream)
        by_channel = await self.sinks.open()
        for notice in self.sinks.notices:
            log.warning("%s", notice)
        intervals = {name: ch.min_interval for name, ch in self.config.channels.items()}
        self.deliverer = Deliverer(self.outbox, by_channel, intervals)

    async def close(self) -> None:
        await self.deliverer.stop()
        await self.sinks.close()
        await self.fetcher.aclose()
        self.parse_pool.close()
        self.store.close()

    # --- polling ------------------------------------------------------------------------------

    def source(self, feed: Feed) -> Source:
        cached = self._sources.get(feed.name)
        if cached is None or cached[0] != feed:
            # Worker processes pay off only with many feeds; a small relay parses in a thread and
            # starts in a fraction of a second.
            parse = self.parse_pool if len(self.config.feeds) >= PARALLEL_PARSE_MIN_FEEDS else None
            cached = (feed, make_source(feed, self.fetcher, parse))
            self._sources[feed.name] = cached
        return cached[1]

    async def poll(self, feed: Feed) -> FeedReport:
        async with self._poll_slots:
            report = await poll_feed(feed, self.source(feed), self.store, self.outbox,
                                     dedupe_window=self.config.defaults.dedupe_window)
        if report.channels:
            self.deliverer.wake(report.channels)
        return report

    async def poll_named(self, name: str) -> FeedReport | None:
        """Poll the feed of that name in the *current* configuration (it may have been reloaded)."""
        feed = self.config.feed(name)
        return await self.poll(feed) if feed else None

    async def poll_all(self) -> list[FeedReport]:
        """Poll every feed once; reports in configuration order."""
        feeds = self.config.feeds
        order = iter(interleave_by_host(feeds))
        reports: dict[str, FeedReport] = {}

        async def worker() -> None:
            # A fixed set of workers instead of a task per feed: 10,000 feeds are not 10,000 coroutines.
            for feed in order:
                reports[feed.name] = await self.poll(feed)

        await asyncio.gather(*(worker() for _ in range(min(POLL_CONCURRENCY, len(feeds)))))
        return [reports[f.name] for f in feeds]

    async def drain(self, max_wait: float) -> dict[str, ChannelReport]:
        return await self.deliverer.drain(deadline=time.time() + max_wait)

    def prune(self) -> None:
        d = self.config.defaults
        removed = self.store.prune(retention=max(d.retention, d.dedupe_window))
        with self.store.transaction():
            sent = self.outbox.prune(keep=max(d.dedupe_window, 7 * 86400))
        if removed or sent:
            log.info("pruned %d remembered item(s) and %d delivered message(s)", removed, sent)

    # --- daemon -------------------------------------------------------------------------------

    def start_delivering(self) -> None:
        self._daemon = True
        self.deliverer.start()

    async def reload(self, config: Config) -> None:
        """Swap in a new configuration without losing queued work."""
        old = self.config
        self.config = config
        self.store.sync_feeds((f.name, f.url, f.kind) for f in config.feeds)
        if (old.channels, old.slack) != (config.channels, config.slack):
            await self.deliverer.stop()
            await self.sinks.close()
            await self._open_sinks()
            if self._daemon:
                self.deliverer.start()
        gone = {f.name for f in old.feeds} - {f.name for f in config.feeds}
        for name in gone:
            self._sources.pop(name, None)
