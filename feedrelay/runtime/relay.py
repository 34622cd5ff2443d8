"""The relay: wires configuration, storage, sources, sinks and the deliverer together.

Library users (and the CLI) drive it with :meth:`Relay.poll_all`, :meth:`Relay.drain` and
:meth:`Relay.reload`; the daemon in :mod:`feedrelay.runtime.daemon` only adds a schedule around it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from typing import TextIO

from feedrelay.config import Config, Feed
from feedrelay.decide.epss import CANDIDATE_DAYS
from feedrelay.delivery.deliverer import ChannelReport, Deliverer
from feedrelay.delivery.outbox import Outbox
from feedrelay.delivery.sinks import Sinks
from feedrelay.ingest.fetch import Fetcher
from feedrelay.ingest.workers import ParsePool
from feedrelay.runtime import epss as epss_refresh
from feedrelay.runtime.epss import EpssReport
from feedrelay.runtime.metrics import Metrics
from feedrelay.runtime.pipeline import FeedReport, poll_feed
from feedrelay.runtime.preview import Preview, preview
from feedrelay.runtime.scheduler import Dispatcher
from feedrelay.runtime.status import Status, read_status, status_of
from feedrelay.sources import Source, make_source
from feedrelay.sources.cve_lookup import CveLookup
from feedrelay.store import DatabaseLock, Store
from feedrelay.store.cve_facts import CveFactsTable
from feedrelay.store.epss import EPSS
from feedrelay.store.stories import Stories

log = logging.getLogger(__name__)

PARALLEL_PARSE_MIN_FEEDS = 20
# Polls in progress at once (fetch → parse → store). Beyond this, extra polls wait without holding a body,
# a parse or a connection, so memory follows this number rather than the number of feeds.
POLL_CONCURRENCY = 256
# Parts of a catch-up read in one go (NVD: ~10,000 CVEs each); the rest waits for the feed's next poll.
MAX_PARTS = 50


class Relay:
    def __init__(self, config: Config, db_path: str | None = None, *, environ: Mapping[str, str] = os.environ,
                 stream: TextIO | None = None, require_slack: bool = False) -> None:
        self.config = config
        self.require_slack = require_slack  # a config edit that leaves a channel without credentials is refused
        self.db_path = db_path or config.database
        self.environ = environ
        self.stream = stream
        self.store: Store
        self.outbox: Outbox
        self.fetcher: Fetcher
        self._lookup: CveLookup | None = None
        self.polls: Dispatcher  # every poll of `once` and `run` goes through it
        self.sinks: Sinks
        self.deliverer: Deliverer
        self._sources: dict[str, tuple[Feed, Source]] = {}
        self.parse_pool = ParsePool()
        self._daemon = False
        self._feeds = {f.name: f for f in config.feeds}
        self.metrics = Metrics()  # counters and histograms since start, and the database's gauges, for /metrics
        self.metrics.watch(self.db_path, lambda: ((f.name for f in self.config.feeds), self.config.channels))
        self._started = False
        self._epss_fetcher: Fetcher | None = None  # made at the first EPSS check (a file of its own size limits)

    async def __aenter__(self) -> Relay:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Take the database (one Relay per database: a second one, in any process, is refused), open the sinks."""
        self._lock = DatabaseLock(self.db_path)  # before opening: a second process must not even migrate it
        try:
            self.store = Store(self.db_path)
        except BaseException:
            self._lock.release()
            raise
        self.outbox = Outbox(self.store)
        self.store.sync_feeds((f.name, f.url, f.kind) for f in self.config.feeds)
        # A (re)start is when someone has fixed a failing channel: try it at once. Rate-limit waits stay.
        self.outbox.resume_failing()
        self._warn_unconfigured()
        d = self.config.defaults
        self.fetcher = Fetcher(timeout=d.timeout, max_body=d.max_body, max_redirects=d.max_redirects,
                               per_host=d.per_host, environ=self.environ)
        # The fetcher's per_host (read at start, as the fetch settings are) is the one the dispatcher keeps.
        self.polls = Dispatcher(lambda feed: self.poll(feed), limit=POLL_CONCURRENCY, per_host=self.fetcher.per_host)
        await self._open_sinks()
        self._started = True

    async def _open_sinks(self) -> None:
        self.sinks = Sinks(self.config, self.environ, self.stream)
        by_channel = await self.sinks.open()
        for notice in self.sinks.notices:
            log.warning("%s", notice)
        intervals = {name: ch.min_interval for name, ch in self.config.channels.items()}
        self.deliverer = Deliverer(self.outbox, by_channel, intervals, alerts=self.config.alerts,
                                   dedupe_window=self.config.defaults.dedupe_window, metrics=self.metrics)
        self.metrics.channels(self.config.channels)

    def _warn_unconfigured(self) -> None:
        """Messages queued for a channel since removed from the config wait for it silently: say so."""
        for channel, stats in sorted(self.outbox.channel_stats().items()):
            if channel not in self.config.channels and stats["pending"]:
                log.warning("channel %r is no longer configured: %d queued message(s) wait until it is added back",
                            channel, stats["pending"])

    async def close(self) -> None:
        self._started = False
        await self.polls.stop(grace=0)
        await self.deliverer.stop()
        await self.sinks.close()
        await self.fetcher.aclose()
        if self._epss_fetcher is not None:
            await self._epss_fetcher.aclose()
            self._epss_fetcher = None
        self.parse_pool.close()
        self.store.close()
        self._lock.release()

    # --- polling ------------------------------------------------------------------------------

    def source(self, feed: Feed) -> Source:
        cached = self._sources.get(feed.name)
        if cached is None or cached[0] != feed:
            # Worker processes pay off only with many feeds; a small relay parses in a thread and
            # starts in a fraction of a second.
            parse = self.parse_pool if len(self.config.feeds) >= PARALLEL_PARSE_MIN_FEEDS else None
            cached = (feed, make_source(feed, self.fetcher, parse, environ=self.environ))
            self._sources[feed.name] = cached
        return cached[1]

    async def poll(self, feed: Feed) -> FeedReport:
        """Poll one feed now, outside the dispatcher's limits (:meth:`submit` queues it within them)."""
        report = await self._poll_part(feed)
        # A source that read only part of what it has (an NVD catch-up after days down) gets polled again at
        # once: each part is kept, and its messages start out, before the next is read.
        total, parts = report, 1
        while report.more and parts < MAX_PARTS:
            # Each part is a poll of its own: a live edit meanwhile (routes, filters) applies from the next one.
            feed = self._feeds.get(feed.name) or feed
            report = await self._poll_part(feed)
            parts += 1
            total.new, total.queued = total.new + report.new, total.queued + report.queued
            total.channels |= report.channels
            total.queued_to += report.queued_to
            total.error, total.warning, total.stale = report.error, report.warning, report.stale
        total.more = report.more
        return total

    async def _poll_part(self, feed: Feed) -> FeedReport:
        started = time.monotonic()
        report = await poll_feed(feed, self.source(feed), self.store, self.outbox,
                                 dedupe_window=self.config.defaults.dedupe_window, alerts=self.config.alerts,
                                 epss=self.config.epss is not None, cves=self._cve_lookup())
        if report.channels:
            self.deliverer.wake(report.channels)
        self._count(report, time.monotonic() - started)
        return report

    def _count(self, report: FeedReport, seconds: float) -> None:
        if report.stale:
            return  # dropped, and polled again at once
        result = ("failed" if report.error else "deferred" if report.skipped else
                  "unchanged" if report.unchanged else "changed")
        self.metrics.poll(result, seconds, report.new)
        for channel, n in report.queued_to.items():
            self.metrics.messages_queued(channel, n)

    def submit(self, name: str) -> asyncio.Future[FeedReport] | None:
        """Queue a poll of the feed of that name in the *current* configuration (None if it has none).
        A feed already queued or in flight is not queued twice: the future of that poll is returned."""
        feed = self._feeds.get(name)
        return self.polls.submit(feed) if feed else None

    async def poll_named(self, name: str) -> FeedReport | None:
        """Poll the feed of that name in the *current* configuration (it may have been reloaded)."""
        future = self.submit(name)
        return await future if future else None

    async def poll_all(self) -> list[FeedReport]:
        """Poll every feed once; reports in configuration order.

        Every feed goes through the dispatcher: at most POLL_CONCURRENCY polls run at once, and at most
        ``per_host`` per origin, so feeds of a slow host never hold slots that other hosts' feeds could use,
        and 10,000 feeds are never 10,000 coroutines."""
        await self.refresh_epss()  # first: the polls' filters and messages use the scores
        futures = [self.polls.submit(feed) for feed in self.config.feeds]
        try:
            return list(await asyncio.gather(*futures))  # only a damaged database raises; it ends the round
        finally:
            for future in futures:
                future.cancel()  # (after an error: the rest of the round is dropped)

    async def refresh_epss(self, *, force: bool = False) -> EpssReport | None:
        """Check for a new EPSS file, if EPSS is used and a check is due (``force``: now). Never raises for the
        file's or the server's problems (they are recorded, shown by `status` and alerted); None when nothing
        was due."""
        if self.config.epss is None:
            return None
        if self._epss_fetcher is None:
            self._epss_fetcher = epss_refresh.make_fetcher(self.config, dict(self.environ))
        report = await epss_refresh.refresh(self.config, self.store, self.outbox, self._epss_fetcher, force=force)
        if report and report.queued:
            self.deliverer.wake({d.channel for d in report.queued})
        return report
    def _cve_lookup(self) -> CveLookup | None:
        """NVD lookups of mentioned CVEs, as the configuration has them now (a reload may turn them on or off)."""
        settings = self.config.cve_lookup
        if not settings.enabled:
            return None
        if self._lookup is None or self._lookup.settings != settings:
            self._lookup = CveLookup(settings, self.fetcher, self.environ)
        return self._lookup

    async def drain(self, max_wait: float) -> dict[str, ChannelReport]:
        return await self.deliverer.drain(deadline=time.time() + max_wait)

    def prune(self) -> None:
        d = self.config.defaults
        removed = self.store.prune(retention=max(d.retention, d.dedupe_window))
        with self.store.transaction():
            sent = self.outbox.prune(keep=max(d.dedupe_window, 7 * 86400))
            Stories(self.store).prune(retention=max(d.retention, d.dedupe_window))
            # (candidates of a relay whose EPSS file stopped coming: the load that would settle them never runs)
            EPSS(self.store).settle(older_than=time.time() - CANDIDATE_DAYS * 86400)
            CveFactsTable(self.store).prune(retention=max(d.retention, d.dedupe_window))
        if removed or sent:
            log.info("pruned %d remembered item(s) and %d delivered message(s)", removed, sent)

    # --- looking without touching -------------------------------------------------------------

    def status(self) -> Status:
        """What `feedrelay status` shows, as data. A Relay need not be started for it: it then reads its database
        read-only, safe while another process runs the daemon on it (and before the first poll, with no database,
        lists the configured feeds as never polled)."""
        if self._started:
            return status_of(self.store, self.config)
        return read_status(self.db_path, self.config)

    async def preview(self, target: str, limit: int = 20) -> Preview:
        """Fetch a feed now (a configured feed's name, or any URL) and say, for its newest ``limit`` entries, what a
        poll would do in each channel and which rule decided: decided as a poll decides, with what the database
        knows. Posts nothing, writes nothing; works on a Relay that is not started, read-only."""
        if self._started:
            return await preview(target, self.config, self.db_path, limit=limit, environ=self.environ,
                                 fetcher=self.fetcher, store=self.store)
        return await preview(target, self.config, self.db_path, limit=limit, environ=self.environ)

    # --- daemon -------------------------------------------------------------------------------

    def start_delivering(self) -> None:
        self._daemon = True
        self.deliverer.start()

    async def stop_delivering(self, grace: float | None = None) -> None:
        """The daemon stops: so does delivery, and a reload still in progress does not start it again."""
        self._daemon = False
        await self.deliverer.stop(grace=grace)

    async def reload(self, config: Config) -> None:
        """Swap in a new configuration without losing queued work."""
        old = self.config
        # First, so that a database that cannot be written (a full disk) leaves the previous configuration whole.
        self.store.sync_feeds((f.name, f.url, f.kind) for f in config.feeds)
        self.config = config
        self._feeds = {f.name: f for f in config.feeds}
        self.deliverer.alerts, self.deliverer.dedupe_window = config.alerts, config.defaults.dedupe_window
        if (old.channels, old.slack) != (config.channels, config.slack):
            await self.deliverer.stop()
            await self.sinks.close()
            await self._open_sinks()
            if self._daemon:
                self.deliverer.start()
        if set(old.channels) - set(config.channels):
            self._warn_unconfigured()
        gone = {f.name for f in old.feeds} - {f.name for f in config.feeds}
        for name in gone:
            self._sources.pop(name, None)
            self.polls.discard(name)  # a removed feed leaves the queue
        before = {f.name: f for f in old.feeds}
        for feed in config.feeds:
            if before.get(feed.name, feed) != feed:
                self.polls.update(feed)  # a queued poll uses the new definition (and its origin's queue)
