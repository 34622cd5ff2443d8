"""`feedrelay run`: APScheduler's timers submit every feed to the relay's dispatcher at its interval (the
dispatcher, shared with `once`, decides when each poll starts); edits to feeds.toml are picked up live."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from feedrelay.config import Config, ConfigError, Feed, format_duration, load_config
from feedrelay.runtime import epss, health, metrics
from feedrelay.runtime.alerts import config_rejected
from feedrelay.runtime.pipeline import FeedReport
from feedrelay.runtime.relay import Relay
from feedrelay.store import DB_ERRORS, StoreError, damaged, describe

log = logging.getLogger(__name__)

CONFIG_CHECK = 2.0  # seconds between looks at feeds.toml's modification time
PRUNE_EVERY = 3600.0
FIRST_POLL_SPREAD = 30.0  # start-up polls are spread over this many seconds, not fired at once
SHUTDOWN_GRACE = 5.0  # seconds polls in flight get to finish on SIGTERM; then they are dropped (and repeated)
CLOCK_STEP = 60.0  # the wall clock going back this much more than the monotonic clock says is a clock step


class Daemon:
    def __init__(self, relay: Relay, *, on_config: Callable[[Config], None] | None = None) -> None:
        self.relay = relay
        self.on_config = on_config
        self.scheduler = AsyncIOScheduler(job_defaults={
            "coalesce": True,  # after a stall, one catch-up poll, not a burst
            "max_instances": 1,
            "misfire_grace_time": None,  # a late poll still runs; the default of 1s silently skips polls
        })
        self.stopping = asyncio.Event()
        self.fatal: str | None = None  # set when the relay cannot go on (a damaged database)
        self._watched: set[asyncio.Future[FeedReport]] = set()  # polls submitted by the timers, until they end
        self._background: set[asyncio.Future[None]] = set()
        # One reload at a time: two (an edit noticed while `systemctl reload` runs) would each reopen the channels
        # while the other waits for a post in flight, and leave two deliverers sending every message.
        self._reloading = asyncio.Lock()
        self._reload_failed: str | None = None  # the database error that stopped the last reload
        self._applied = self._seen = self._config_version()

    # --- jobs -------------------------------------------------------------------------------

    def _config_version(self) -> tuple[int, int, int] | None:
        """What tells one save of feeds.toml from another: the modification time alone may not (a file written
        within the same clock tick as its truncation, a replacement that keeps its mtime: `cp -p`, `rsync -a`)."""
        try:
            st = self.relay.config.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _config_mtime(self) -> float | None:
        try:
            return self.relay.config.path.stat().st_mtime
        except OSError:
            return None

    async def _poll(self, name: str) -> None:
        """The feed's timer fired: hand it to the relay's dispatcher, which starts it when its host and the
        global limit have room. The job never waits for the poll, so a slow host holds no timer either."""
        self._submit(name)

    def _submit(self, name: str) -> None:
        if self.stopping.is_set():
            return
        future = self.relay.submit(name)
        if future is not None and future not in self._watched:  # (one already queued or in flight is watched)
            self._watched.add(future)
            future.add_done_callback(lambda f: self._polled(name, f))

    def _polled(self, name: str, future: asyncio.Future[FeedReport]) -> None:
        self._watched.discard(future)
        if future.cancelled():
            return  # dropped at shutdown or removed from the config: nothing of it was kept
        exc = future.exception()
        if isinstance(exc, StoreError):
            log.error("stopping: %s", exc)
            self.fatal = str(exc)
            self.stopping.set()
        elif exc is not None:
            log.error("feed %r: poll failed unexpectedly", name, exc_info=exc)
        elif future.result().stale:
            # The URL changed mid-poll, and the "poll it now" of the edit found this one in flight: poll the
            # new URL now.
            self._submit(name)

    def _schedule(self, feed: Feed, first_run: datetime) -> None:
        jitter = feed.interval * self.relay.config.defaults.jitter
        self.scheduler.add_job(self._poll, "interval", args=[feed.name], id=feed.name, name=f"poll {feed.name}",
                               seconds=feed.interval, jitter=jitter or None, next_run_time=first_run,
                               replace_existing=True)

    def schedule_all(self, feeds: tuple[Feed, ...]) -> None:
        now = datetime.now().astimezone()
        n = max(1, len(feeds))
        for i, feed in enumerate(feeds):
            # Interval jobs added together fire together: stagger the first polls.
            offset = min(FIRST_POLL_SPREAD, feed.interval) * i / n
            self._schedule(feed, now + timedelta(seconds=offset))

    async def _watch_clock(self) -> None:
        """APScheduler, Retry-After and outbox retry times are wall-clock deadlines: a clock set back an hour
        (an NTP step, a VM restored, a clock that ran fast corrected) would stop every poll, the config check
        and delayed deliveries for that hour. This loop runs on the monotonic clock and moves them back with it."""
        wall, mono = time.time(), time.monotonic()
        while not self.stopping.is_set():
            self._heartbeat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), CONFIG_CHECK)
            now_wall, now_mono = time.time(), time.monotonic()
            back = (now_mono - mono) - (now_wall - wall)
            wall, mono = now_wall, now_mono
            if back >= CLOCK_STEP:
                self._clock_stepped_back(back, now_wall)

    def _heartbeat(self) -> None:
        """For `feedrelay health`: this loop ran just now (a blocked event loop stops it)."""
        if self.relay.db_path != ":memory:":
            with contextlib.suppress(OSError):  # (a full or read-only disk shows up in the polls' own errors)
                health.beat(self.relay.db_path)

    def _clock_stepped_back(self, back: float, now: float) -> None:
        log.warning("the system clock went back by %s; polls, Retry-After waits and message retries are moved back "
                    "with it", format_duration(round(back)))
        shift = timedelta(seconds=back)
        for job in self.scheduler.get_jobs():
            if job.next_run_time is not None:
                job.modify(next_run_time=job.next_run_time - shift)
        self.relay.deliverer.clock_stepped_back(back)
        with contextlib.suppress(*DB_ERRORS), self.relay.store.transaction():
            self.relay.outbox.clock_stepped_back(back, now)
            self.relay.store.clock_stepped_back(back, now)

    async def check_config(self) -> None:
        version = self._config_version()
        if version is None or version == self._applied:
            if version is None and self._seen is not None:
                log.warning("%s is gone; still running the previous configuration", self.relay.config.path)
            self._seen = version
            return
        if version != self._seen:
            # Changed since the last look: an editor or a tool may still be writing it, and a file caught half
            # written can be valid (an empty one is): wait until it has stayed the same for one look.
            self._seen = version
            return
        self._applied = version
        await self.reload()

    def _on_sighup(self) -> None:
        # The file as it is now is the one applied: the periodic check must not apply it a second time.
        self._applied = self._seen = self._config_version()
        task = asyncio.ensure_future(self.reload())
        self._background.add(task)  # (the loop keeps only a weak reference to a task)
        task.add_done_callback(self._background.discard)

    async def reload(self) -> None:
        async with self._reloading:
            await self._reload()

    async def _reload(self) -> None:
        if self.stopping.is_set():
            return  # (a reload asked for while the relay stops would reopen the channels it just stopped)
        path = self.relay.config.path
        try:
            new = load_config(path, self.relay.environ)
            if self.relay.require_slack and (missing := new.missing_delivery_env(self.relay.environ)):
                raise ConfigError("; ".join(missing) + " (--require-slack or FEEDRELAY_REQUIRE_SLACK is set)")
        except ConfigError as exc:
            log.error("config change ignored, still running the previous configuration: %s", exc)
            if alerts := self.relay.config.alerts:
                # One alert per bad version of the file (its modification time), however often it is reloaded.
                alert = config_rejected(alerts, path.name, mtime=self._config_mtime() or 0.0)
                with contextlib.suppress(*DB_ERRORS):
                    self.relay.deliverer.queue_alert(alert, time.time())
            return
        old = self.relay.config
        try:
            await self.relay.reload(new)
        except DB_ERRORS as exc:
            message = describe(exc, self.relay.db_path)
            if message != self._reload_failed:  # (tried again at every look: logged once)
                log.error("config change not applied yet, still running the previous configuration: %s; it is "
                          "tried again every %.0f s", message, CONFIG_CHECK)
            self._reload_failed = message
            self._applied = None  # the next look tries again
            return
        self._reload_failed = None
        if self.on_config:
            self.on_config(new)
        old_feeds = {f.name: f for f in old.feeds}
        new_names = {f.name for f in new.feeds}
        for name in set(old_feeds) - new_names:
            self.scheduler.remove_job(name)
        now = datetime.now().astimezone()
        added = changed = 0
        for feed in new.feeds:
            before = old_feeds.get(feed.name)
            if before is None or before.url != feed.url or before.kind != feed.kind:
                self._schedule(feed, now)  # new or moved: poll it now
                added += 1
            elif before.interval != feed.interval:
                # Only reschedule what changed; replacing every job would reset all timers.
                self._schedule(feed, now + timedelta(seconds=feed.interval))
                changed += 1
        log.info("configuration reloaded from %s: %d feed(s), %d added or moved, %d removed, %d rescheduled",
                 path, len(new.feeds), added, len(set(old_feeds) - new_names), changed)

    # --- lifecycle --------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        with contextlib.suppress(NotImplementedError, AttributeError):
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        self.relay.start_delivering()
        self.schedule_all(self.relay.config.feeds)
        self.scheduler.add_job(self.check_config, "interval", seconds=CONFIG_CHECK, id="_config")
        # EPSS: asked every few minutes whether a check is due (its `refresh`, or sooner after a failure).
        self.scheduler.add_job(self._epss, "interval", seconds=epss.TICK, id="_epss",
                               next_run_time=datetime.now().astimezone())
        self.scheduler.add_job(self._prune, "interval", seconds=PRUNE_EVERY, id="_prune",
                               next_run_time=datetime.now().astimezone() + timedelta(seconds=60))
        self.scheduler.start()
        clock = asyncio.create_task(self._watch_clock())
        endpoint = self._serve_metrics()
        log.info("feedrelay running: %d feed(s), %d channel(s), database %s; Ctrl-C to stop",
                 len(self.relay.config.feeds), len(self.relay.config.channels), self.relay.db_path)
        await self.stopping.wait()
        await clock
        if endpoint is not None:
            await asyncio.to_thread(endpoint.close)
        log.info("stopping: finishing polls and the messages in flight")
        self.scheduler.pause()
        # Deliveries get the same grace, at the same time: a Slack that hangs must not hold up the stop either.
        delivering = asyncio.create_task(self.relay.stop_delivering(grace=SHUTDOWN_GRACE))
        # Queued polls are dropped; those in flight get the grace, then are cancelled (and repeated at the next start).
        await self.relay.polls.stop(grace=SHUTDOWN_GRACE)
        self.scheduler.shutdown(wait=False)
        await delivering
        async with self._reloading:
            pass  # a reload in progress (its channels stopped above) ends before the relay is closed under it

    def _serve_metrics(self) -> metrics.Endpoint | None:
        settings = self.relay.config.metrics
        if settings is None:
            return None
        self.relay.metrics.started.set(time.time())
        try:
            endpoint = metrics.serve(settings.host, settings.port, self.relay.metrics)
        except OSError as exc:
            # The relay's real work does not depend on it: say so loudly and carry on.
            log.error("metrics: cannot listen for %s (%s); check [metrics] listen in the config",
                      metrics.url(settings.host, settings.port), exc.strerror or exc)
            return None
        log.info("metrics at %s", metrics.url(settings.host, settings.port))
        return endpoint

    async def _epss(self) -> None:
        try:
            await self.relay.refresh_epss()
        except DB_ERRORS as exc:
            # (the scores of the last good file stay; a damaged file stops the relay, as in a poll)
            message = describe(exc, self.relay.db_path)
            log.error("EPSS: %s", message)
            if damaged(exc):
                self.fatal = message
                self.stopping.set()

    async def _prune(self) -> None:
        try:
            self.relay.prune()
        except DB_ERRORS as exc:
            # One line, as from a poll, not a scheduler traceback; a damaged file stops the relay, as in a poll.
            message = describe(exc, self.relay.db_path)
            log.error("pruning: %s", message)
            if damaged(exc):
                self.fatal = message
                self.stopping.set()
