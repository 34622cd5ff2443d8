"""Sends pending outbox rows: per channel, oldest first, paced, retried with backoff, never dropped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from feedrelay.config import Alerts, format_duration
from feedrelay.delivery.outbox import Outbox, Pending
from feedrelay.delivery.sinks import RATE_LIMITED, Outcome, Sink
from feedrelay.model import Delivery
from feedrelay.runtime.alerts import (
    CHANNEL_FAILING,
    RUNBOOKS,
    channel_failing,
    channel_incident,
    channel_recovered,
    duration,
)
from feedrelay.runtime.metrics import Metrics
from feedrelay.store import DB_ERRORS, describe

log = logging.getLogger(__name__)

MAX_BACKOFF = 300.0  # a Slack outage is retried at least every 5 minutes
RECHECK_FAILING = 300.0  # a channel with a permanent error is tried again this often (it may be fixed)
IDLE_CHECK = 30.0
DB_RETRY = 5.0  # a full disk or a lock usually passes; try again soon


@dataclass
class ChannelReport:
    sent: int = 0
    pending: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.pending == 0 and self.failed == 0 and not self.errors


def backoff(attempts: int) -> float:
    """Exponential, capped, with jitter so many channels do not retry in lockstep."""
    return min(MAX_BACKOFF, 2.0 ** min(attempts, 10)) * (0.5 + random.random() / 2)


class Deliverer:
    def __init__(self, outbox: Outbox, sinks: Mapping[str, Sink], min_interval: Mapping[str, float], *,
                 alerts: Alerts | None = None, dedupe_window: float = 30 * 86400.0,
                 metrics: Metrics | None = None) -> None:
        self.outbox = outbox
        self.metrics = metrics or Metrics()
        self.sinks = sinks
        self.min_interval = min_interval
        self.alerts = alerts
        self.dedupe_window = dedupe_window
        self._wake: dict[str, asyncio.Event] = {}
        self._paused_until: dict[str, float] = {}  # per pause_key (one Slack workspace), wall clock
        self._stop = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[ChannelReport]] = {}
        self._last_sent: dict[str, float] = {}  # per channel, monotonic: pacing survives between steps
        # Per channel: (row id, outcome) of an attempt whose outcome could not be written (a full disk). Writing
        # it is retried, not the post: Slack already has it, and a full disk can last hours.
        self._unrecorded: dict[str, tuple[int, Outcome]] = {}
        # A 429's pause covers the whole workspace and outlives a restart or a reload (`once` under cron is a
        # new process each run): the rate-limited rows still hold when it ends.
        try:
            paused = outbox.rate_limited_until(RATE_LIMITED)
        except DB_ERRORS as exc:  # best effort: a reload must not be left half done (its channels stopped)
            log.warning("cannot read Slack's rate-limit pauses: %s", describe(exc, outbox.store.path))
            paused = {}
        for channel, until in paused.items():
            if channel in sinks:
                key = sinks[channel].pause_key
                self._paused_until[key] = max(self._paused_until.get(key, 0), until)

    # --- public -----------------------------------------------------------------------------

    def wake(self, channels: Iterable[str]) -> None:
        """New rows were queued for these channels."""
        for ch in channels:
            self._event(ch).set()

    def clock_stepped_back(self, seconds: float) -> None:
        """The wall clock went back: Slack's rate-limit pauses end as many seconds after it as they did before."""
        for key, until in self._paused_until.items():
            self._paused_until[key] = until - seconds

    def start(self) -> None:
        """Daemon mode: a task per channel that waits for work forever."""
        for ch in self.sinks:
            self._tasks[ch] = asyncio.create_task(self._channel(ch, forever=True), name=f"deliver:{ch}")

    async def stop(self, grace: float | None = None) -> None:
        """Let each channel finish the message in flight, then stop. After ``grace`` seconds, a post still in
        flight (a Slack that hangs until the 30 s timeout) is dropped: it stays queued and is sent at the next start."""
        self._stop.set()
        for ev in self._wake.values():
            ev.set()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks.values(), timeout=grace)
            for task in late:
                log.info("%s: the post in flight is dropped by shutdown; it is sent at the next start",
                         task.get_name().replace("deliver:", "channel "))
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()

    async def drain(self, deadline: float) -> dict[str, ChannelReport]:
        """`once` mode: deliver what is pending, channels in parallel; give up waiting at ``deadline``."""
        reports: dict[str, ChannelReport] = {}

        def more(channel: str) -> bool:
            # A channel that emptied its queue (no errors) and has work again got it after its turn: an alert
            # about another channel's failure. One that stopped on an error keeps its rows for the next run.
            return channel in self.sinks and (channel not in reports or not reports[channel].errors)

        while channels := [c for c in self.outbox.channels_with_pending() if more(c)]:
            tasks = {c: asyncio.create_task(self._channel(c, forever=False, deadline=deadline)) for c in channels}
            for c, task in tasks.items():
                report = await task
                if c in reports:
                    report.sent += reports[c].sent
                    report.failed += reports[c].failed
                reports[c] = report
        for c in self.outbox.channels_with_pending():
            if c not in self.sinks:
                report = ChannelReport(pending=sum(1 for _ in self._pending_ids(c)))
                report.errors.append(f"channel {c!r} is no longer configured; its {report.pending} message(s) wait "
                                     "until it is added back")
                reports[c] = report
        return reports

    # --- internals --------------------------------------------------------------------------

    def _event(self, channel: str) -> asyncio.Event:
        return self._wake.setdefault(channel, asyncio.Event())

    async def _nap(self, channel: str, seconds: float) -> None:
        ev = self._event(channel)
        ev.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ev.wait(), timeout=max(0.0, seconds))

    async def _channel(self, channel: str, *, forever: bool, deadline: float = float("inf")) -> ChannelReport:
        report = ChannelReport()
        while not self._stop.is_set():
            try:
                if not await self._step(channel, forever, deadline, report):
                    break
            except DB_ERRORS as exc:
                # The database failed (damaged, disk full): nothing was marked, so nothing is lost.
                message = describe(exc, self.outbox.store.path)
                log.error("channel %s: %s", channel, message)
                report.errors.append(message)
                if not forever:
                    break
                await self._sleep(DB_RETRY)
        with contextlib.suppress(*DB_ERRORS):
            report.pending = sum(1 for _ in self._pending_ids(channel))
        return report

    async def _step(self, channel: str, forever: bool, deadline: float, report: ChannelReport) -> bool:
        """Deliver (or wait for) the channel's oldest pending message; False when the channel should stop."""
        sink = self.sinks[channel]
        row = self.outbox.next(channel)
        if row is None:
            if forever:
                await self._nap(channel, IDLE_CHECK)
            return forever
        if (unrecorded := self._unrecorded.get(channel)) and unrecorded[0] == row.id:
            recorded = self._record(channel, row, unrecorded[1], sink, report)
            del self._unrecorded[channel]
            return recorded or forever
        now = time.time()
        pace = self.min_interval.get(channel, 1.0)
        retry = row.next_attempt - now
        paused = self._paused_until.get(sink.pause_key, 0) - now
        wait = max(retry, paused, self._last_sent.get(channel, -float("inf")) + pace - time.monotonic())
        if wait > 0:
            if now + wait > deadline:
                report.errors.append(self._stopped(channel, row, wait, retry=retry, paused=paused, pace=pace))
                return False
            # Re-read the row at least every IDLE_CHECK: `feedrelay retry` may have ended the wait.
            await self._sleep(min(wait, IDLE_CHECK))
            return True
        outcome = await self._attempt(channel, sink, row)
        if outcome.kind == "reject":
            log.warning("channel %s: Slack rejected message %d (%s); retrying as plain text",
                        channel, row.id, outcome.error)
            outcome = await self._attempt(channel, sink, row, plain=True)
        self._last_sent[channel] = time.monotonic()
        self._unrecorded[channel] = (row.id, outcome)
        recorded = self._record(channel, row, outcome, sink, report)
        del self._unrecorded[channel]
        return recorded or forever

    async def _attempt(self, channel: str, sink: Sink, row: Pending, plain: bool = False) -> Outcome:
        """Send one row as its action says. A reply or an update is at the head of its channel's queue only once its
        story's first message has left it (rows go out in order), so the first message's ts is known by now."""
        if row.action == "post":
            day = self.outbox.parent(channel, row.message["thread"]) if row.message.get("thread") else None
            if day is not None and sink.threads(day[0]):  # under its daily thread's parent (thread = "daily")
                return await sink.send(row.message, plain=plain, thread_ts=day[0])
            return await sink.send(row.message, plain=plain)
        parent = self.outbox.parent(channel, row.story) if row.story else None
        if parent is None or not sink.threads(parent[0]):
            if row.action == "update":
                # Nothing to edit (the first message was rejected, or printed to the terminal): the reply queued
                # with this update already says what changed.
                log.info("channel %s: message %d edits a message that was not posted to Slack; skipped", channel,
                         row.id)
                return Outcome.sent("")
            log.info("channel %s: message %d replies to a message that was not posted to Slack; posted as a new "
                     "message", channel, row.id)
            return await sink.send(row.message, plain=plain)
        ts, channel_id = parent
        if row.action == "reply":
            # A story first posted in a daily thread is itself a reply: its follow-ups join that day's thread.
            thread = self.outbox.day_thread(channel, row.story or "")
            day = self.outbox.parent(channel, thread) if thread else None
            return await sink.send(row.message, plain=plain, thread_ts=day[0] if day else ts,
                                   broadcast=bool(row.message.get("broadcast")))
        outcome = await sink.update(channel_id, ts, row.message, plain=plain)
        if outcome.kind == "edit_refused":
            log.warning("channel %s: Slack refused to edit message %s (%s); its current state is posted as a reply "
                        "in its thread instead", channel, ts, outcome.error)
            outcome = await sink.send(row.message, plain=plain, thread_ts=ts)
        return outcome

    def queue_alert(self, alert: Delivery | None, now: float) -> None:
        """Queue an alert (once per incident: the outbox drops a repeat) and wake its channel."""
        if alert is None:
            return
        with self.outbox.store.transaction():
            queued = self.outbox.enqueue([alert], window=self.dedupe_window, now=now)
        if queued:
            self.metrics.messages_queued(alert.channel)
            log.info("alert queued for channel %s: %s", alert.channel, alert.message["text"])
            self.wake([alert.channel])

    async def _sleep(self, seconds: float) -> None:
        """Sleep that a shutdown interrupts (not a wake: a retry time is a promise to Slack)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    def _pending_ids(self, channel: str) -> Iterable[int]:
        return (r[0] for r in self.outbox.db.execute(
            "SELECT id FROM outbox WHERE channel = ? AND status = 'pending'", [channel]))

    def _stopped(self, channel: str, row: Pending, wait: float, *, retry: float, paused: float, pace: float) -> str:
        """Why `once` stopped at its deadline: whichever wait was the longest. A big backlog paced at
        min_interval is not an error being retried, and must not read like one."""
        left = f"{sum(1 for _ in self._pending_ids(channel))} message(s) left queued for the next run"
        more = format_duration(math.ceil(wait))
        if paused >= wait:
            return f"--max-wait reached during a Slack rate-limit pause (Retry-After, {more} more); {left}"
        if retry >= wait:
            error = f" (last error: {row.last_error})" if row.last_error else ""
            return (f"--max-wait reached with message {row.id} waiting {more} to retry after {row.attempts} failed "
                    f"attempt(s){error}; {left}")
        return (f"--max-wait reached while pacing posts to one every {format_duration(pace)} (min_interval); "
                f"{left}")

    def _stuck(self, channel: str, row: Pending, error: str, sink: Sink, now: float) -> None:
        """A channel that has delivered nothing for ``feed_failing_after`` (Slack down for it, an error Slack does not
        document, a proxy in the way) is failing like a refused one: the operator is alerted, and told when it
        recovers. Since when is read from the database, so `once` under cron, a new process each run, tells too."""
        if not self.alerts or self.outbox.failing_since(channel) is not None:
            return
        since = max(row.created, self.outbox.last_sent(channel) or 0.0)
        if now - since < self.alerts.feed_failing_after:
            return
        error = f"{error} (nothing delivered for {duration(now - since)})"
        self.outbox.set_channel_failing(channel, error, since)
        log.error("channel %s (%s) is failing: %s; its messages are kept and retried (runbook: %s#%s)", channel,
                  sink.description, error, RUNBOOKS, CHANNEL_FAILING)
        self.queue_alert(channel_failing(self.alerts, channel, sink.description, error, since=since), now)

    def _record(self, channel: str, row: Pending, outcome: Outcome, sink: Sink, report: ChannelReport) -> bool:
        """Write the outcome; False when this channel should stop for now (`once` mode)."""
        now = time.time()
        result = {"retry": "rate_limited" if outcome.retry_after is not None else "retry",
                  "permanent": "refused", "reject": "rejected"}.get(outcome.kind, outcome.kind)
        self.metrics.send_attempt(channel, result)
        if outcome.kind == "sent":
            self.outbox.mark_sent(row.id, outcome.ts, now, outcome.channel_id)
            self.metrics.delivered(channel, now - row.created)
            if row.attempts:
                since = self.outbox.failing_since(channel)
                self.outbox.set_channel_failing(channel, None)
                log.info("channel %s: delivered message %d after %d retries", channel, row.id, row.attempts)
                if since is not None and self.alerts and self.outbox.queued_before(
                        self.alerts.channel, channel_incident(channel, since)):
                    self.queue_alert(channel_recovered(self.alerts, channel, since=since, now=now), now)
            report.sent += 1
            return True
        if outcome.kind == "retry":
            delay = outcome.retry_after if outcome.retry_after is not None else backoff(row.attempts)
            if outcome.retry_after is not None:
                # Slack asks for a pause before *any* further post to the workspace.
                self._paused_until[sink.pause_key] = max(self._paused_until.get(sink.pause_key, 0), now + delay)
            self.outbox.mark_retry(row.id, outcome.error, now + delay)
            log.warning("channel %s: %s; message %d kept, retry in %.1fs", channel, outcome.error, row.id, delay)
            self._stuck(channel, row, outcome.error, sink, now)
            return True
        if outcome.kind == "permanent":
            self.outbox.set_channel_failing(channel, outcome.error, now)
            self.outbox.mark_retry(row.id, outcome.error, now + RECHECK_FAILING)
            log.error("channel %s (%s) is failing: %s; its messages are kept and retried every %.0fs "
                      "(runbook: %s#%s)", channel, sink.description, outcome.error, RECHECK_FAILING, RUNBOOKS,
                      CHANNEL_FAILING)
            if self.alerts:
                since = self.outbox.failing_since(channel) or now
                alert = channel_failing(self.alerts, channel, sink.description, outcome.error, since=since)
                self.queue_alert(alert, now)
            report.errors.append(outcome.error)
            return False
        self.outbox.mark_failed(row.id, outcome.error)
        log.error("channel %s: Slack rejected message %d even as plain text (%s); marked failed, see "
                  "`feedrelay status`", channel, row.id, outcome.error)
        report.failed += 1
        return True
