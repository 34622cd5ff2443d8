"""One poll of one feed, stage by stage: source → store (what is new) → decider (filters, routing) → render
→ outbox, in one transaction. Every stage's I/O happens here; every decision is in `decide`, every message in
`render`."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from feedrelay import render
from feedrelay.config import Alerts, Feed
from feedrelay.decide.decider import decide_poll
from feedrelay.delivery.outbox import Outbox
from feedrelay.model import Delivery
from feedrelay.runtime.alerts import feed_failing, feed_incident, feed_recovered
from feedrelay.sources import Source, SourceError
from feedrelay.store import DB_ERRORS, FeedRow, Store, StoreError, damaged, describe

log = logging.getLogger(__name__)

# A server's Retry-After is honoured up to this: a misconfigured "come back in a week" must not silence a feed.
MAX_RETRY_AFTER = 24 * 3600.0


@dataclass
class FeedReport:
    feed: str
    new: int = 0
    queued: int = 0
    channels: frozenset[str] = frozenset()
    queued_to: Counter[str] = field(default_factory=Counter)  # messages queued per channel, alerts included
    unchanged: bool = False
    skipped: bool = False
    stale: bool = False  # the feed's URL or type changed while it was polled: nothing of the poll was kept
    first_poll: bool = False
    error: str | None = None
    warning: str | None = None
    more: bool = False  # the source has more to give at once (an NVD catch-up read in parts)


async def poll_feed(feed: Feed, source: Source, store: Store, outbox: Outbox, *, dedupe_window: float,
                    alerts: Alerts | None = None, now: float | None = None) -> FeedReport:
    """Poll once and queue what is new. Never raises for a feed's own problems: they are recorded."""
    now = time.time() if now is None else now
    try:
        row = store.feed(feed.name) or store.ensure_feed(feed.name, feed.url, feed.kind)
    except DB_ERRORS as exc:
        if damaged(exc):
            raise StoreError(describe(exc, store.path)) from None
        log.error("feed %r: %s", feed.name, describe(exc, store.path))
        return FeedReport(feed.name, error=describe(exc, store.path))
    if row.not_before and now < row.not_before:
        log.info("feed %r: not polled until %s, as the server asked (Retry-After)", feed.name,
                 time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(row.not_before)))
        return FeedReport(feed.name, skipped=True)
    try:
        result = await source.poll(row.state)
    except SourceError as exc:
        if _moved_on(store, feed):
            return FeedReport(feed.name, stale=True)
        return _failed(store, outbox, feed, row, str(exc), exc.retry_after, alerts, dedupe_window, now)
    except Exception as exc:  # a bug or a parser crash on hostile input must not stop other feeds
        log.exception("feed %r: unexpected error while polling", feed.name)
        return _failed(store, outbox, feed, row, f"internal error: {type(exc).__name__}: {str(exc)[:300]}", None,
                       alerts, dedupe_window, now)
    if _moved_on(store, feed):
        # A live edit gave the feed a new URL or type during the fetch: this listing belongs to the old one, and
        # keeping it would mark the new URL as polled, so its first real poll would post its whole archive.
        log.info("feed %r: its URL or type changed while it was polled; that poll is dropped", feed.name)
        return FeedReport(feed.name, stale=True)

    try:
        if result.unchanged:
            with store.transaction():
                warning = row.warning if result.warning is None else result.warning or None
                store.record_success(feed.name, result.state, warning=warning, listed=None, now=now)
                recovered = _recovery(outbox, feed, row, alerts, dedupe_window, now)
            return FeedReport(feed.name, unchanged=True, channels=frozenset(d.channel for d in recovered),
                              queued_to=Counter(d.channel for d in recovered))
        first = not row.initialized
        known = store.known_keys(feed.name, [i.key for i in result.items])
        fresh = [i for i in result.items if i.key not in known]
        posts = [i for i in fresh if i.kind == "post"]  # (a CVE's identity is its id: no lookalikes to find)
        lookalikes = store.lookalikes(feed.name, posts, row.listing_gen) if posts and (row.url_changed or not first) \
            else {}
        # The first parsed poll after an upgrade from schema 1: entries remembered under their old keys are known.
        upgraded = store.remembered_before_upgrade(feed.name, fresh) if fresh and row.keys_version < 2 else set()
        plan = decide_poll(feed, result.items, known, first_poll=first, url_changed=bool(row.url_changed),
                           lookalikes=lookalikes, upgraded=upgraded, now=now)
        first = plan.first_poll
        gen = row.listing_gen + 1
        with store.transaction():
            store.remember(feed.name, plan.remember, now, gen)
            if known:
                # (NVD returns what changed, not a listing: a CVE it keeps modifying is seen again, too)
                store.still_listed(feed.name, known, now, gen)
            queued = outbox.enqueue(render.deliveries(plan.intents), window=dedupe_window, now=now,
                                    except_feed=feed.name)
            store.record_success(feed.name, result.state, warning=result.warning,
                                 listed=len(result.items) if result.listing else None, listing_gen=gen, now=now)
            recovered = _recovery(outbox, feed, row, alerts, dedupe_window, now)
    except DB_ERRORS as exc:
        if damaged(exc):
            raise StoreError(describe(exc, store.path)) from None
        # Nothing of this poll was kept; the next poll repeats it.
        log.error("feed %r: %s", feed.name, describe(exc, store.path))
        return FeedReport(feed.name, error=describe(exc, store.path))

    for v in plan.verdicts:
        log.debug("feed %r item %r → %s: %s", feed.name, v.item.title[:80], v.channel, v.decision.reason)
    if plan.moved:
        log.info("feed %r: the new URL lists what the feed did; polled as the same feed, moved", feed.name)
    if plan.reissued:
        log.info("feed %r: %d entry(ies) came back under a new id; remembered, not posted again", feed.name,
                 plan.reissued)
    if result.warning:
        log.warning("feed %r: %s", feed.name, result.warning)
    if first:
        log.info("feed %r: first poll, remembered %d item(s), queued %d (backlog = %d)",
                 feed.name, len(plan.remember), len(queued), feed.backlog)
    elif queued or plan.remember:
        log.info("feed %r: %d new item(s), %d message(s) queued", feed.name, len(plan.remember), len(queued))
    return FeedReport(feed.name, new=len(plan.remember), queued=len(queued),
                      channels=frozenset(d.channel for d in queued + recovered), first_poll=first,
                      warning=result.warning, queued_to=Counter(d.channel for d in queued + recovered),
                      more=result.more)


def _moved_on(store: Store, feed: Feed) -> bool:
    """Whether the feed's row no longer describes what this poll fetched (a live edit changed it meanwhile)."""
    try:
        row = store.feed(feed.name)
    except DB_ERRORS:
        return False  # the poll's own writes will meet the same error and report it
    return row is None or not row.active or row.url != feed.url or row.kind != feed.kind


def _recovery(outbox: Outbox, feed: Feed, row: FeedRow, alerts: Alerts | None, window: float,
              now: float) -> list[Delivery]:
    """Inside the poll's transaction: "works again", if this feed's failure was alerted."""
    if not (alerts and row.errors and row.error_since):
        return []
    if not outbox.queued_before(alerts.channel, feed_incident(feed.name, row.error_since)):
        return []
    log.info("feed %r: works again after %d failed poll(s)", feed.name, row.errors)
    return outbox.enqueue([feed_recovered(alerts, feed.name, since=row.error_since, now=now)], window=window, now=now)


def _failed(store: Store, outbox: Outbox, feed: Feed, row: FeedRow, error: str, retry_after: float | None,
            alerts: Alerts | None, window: float, now: float) -> FeedReport:
    log.warning("feed %r: %s", feed.name, error)
    if retry_after and retry_after > MAX_RETRY_AFTER:
        log.info("feed %r: the server asked for a %.0f h pause; waiting %.0f h", feed.name, retry_after / 3600,
                 MAX_RETRY_AFTER / 3600)
        retry_after = MAX_RETRY_AFTER
    queued: list[Delivery] = []
    try:
        store.record_error(feed.name, error, retry_after=retry_after, now=now)
        alert = alerts and feed_failing(alerts, feed.name, error, since=row.error_since or now,
                                        attempts=row.errors + 1, now=now)
        if alert:
            with store.transaction():
                queued = outbox.enqueue([alert], window=window, now=now)
            if queued:
                log.error("feed %r: failing since %s; alert queued for channel %s", feed.name,
                          time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(row.error_since or now)), alert.channel)
    except DB_ERRORS as exc:
        log.error("feed %r: cannot record the error: %s", feed.name, describe(exc, store.path))
    return FeedReport(feed.name, error=error, channels=frozenset(d.channel for d in queued),
                      queued_to=Counter(d.channel for d in queued))
