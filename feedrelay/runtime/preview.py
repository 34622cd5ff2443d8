"""`feedrelay preview` as data: fetch a feed now and say what a poll would do with each entry.

It decides on the same path as a real poll (:func:`feedrelay.runtime.pipeline.plan_poll`: known keys, the silent
first poll, ``backlog``, GUID churn, a moved feed), and asks the outbox the same question about an article that
another feed already brought to a channel, on the database opened read-only. It posts nothing and writes nothing,
so it is safe while the daemon runs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feedrelay.config import Config, Defaults, Feed, Route, format_duration
from feedrelay.model import Item


class FeedNotFound(LookupError):
    """The target is neither a configured feed's name nor an http(s) URL."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no such feed"


@dataclass(frozen=True)
class PreviewVerdict:
    channel: str
    action: str  # post | skip | seen | hold
    reason: str


@dataclass(frozen=True)
class PreviewEntry:
    item: Item
    seen: bool | None  # remembered already; None: not known (no database, or a URL that is not configured)
    verdicts: tuple[PreviewVerdict, ...]


@dataclass(frozen=True)
class Preview:
    feed: Feed
    configured: bool  # False: any URL, with no channels to decide for
    first_poll: bool  # the feed's next poll is a silent first poll (only the newest `backlog` are posted)
    entries: list[PreviewEntry]  # newest first, at most `limit`
    total: int  # entries the feed lists

    def posts(self) -> dict[str, list[str]]:
        """Channel → the keys of the entries a poll now would post there, oldest first (what a poll would queue)."""
        out: dict[str, list[str]] = {}
        for entry in reversed(self.entries):
            for v in entry.verdicts:
                if v.action == "post":
                    out.setdefault(v.channel, []).append(entry.item.key)
        return out


def resolve(target: str, config: Config | None) -> tuple[Feed, bool]:
    """The configured feed named ``target``, or a feed for a URL; raises :class:`FeedNotFound`."""
    feed = config.feed(target) if config else None
    if feed is not None:
        return feed, True
    if not target.startswith(("http://", "https://")):
        names = ", ".join(f.name for f in config.feeds) if config else ""
        where = config.path if config else "the config"
        raise FeedNotFound(f"no feed named {target!r} in {where} (feeds: {names or 'none'}); or give a URL")
    return Feed(name=target, url=target, kind="rss", interval=900, backlog=0, routes=(Route("(any)"),)), False


async def preview(target: str, config: Config | None, database: str | None = None, *, limit: int = 20,
                  environ: Mapping[str, str] | None = None, fetcher: Any = None, store: Any = None,
                  now: float | None = None) -> Preview:
    """Fetch ``target`` (a feed name from ``config`` or a URL) and decide on its entries as a poll would.

    ``store`` is an open :class:`~feedrelay.store.Store` to read (a running Relay's); otherwise ``database`` is
    opened read-only, if it exists. Raises :class:`FeedNotFound`, :class:`~feedrelay.sources.SourceError` (the
    fetch failed) or :class:`~feedrelay.store.StoreError`."""
    from feedrelay.sources import make_source

    feed, configured = resolve(target, config)
    defaults = config.defaults if config else Defaults()
    own_fetcher = fetcher is None
    if own_fetcher:
        from feedrelay.ingest.fetch import Fetcher

        fetcher = Fetcher(timeout=defaults.timeout, max_body=defaults.max_body, max_redirects=defaults.max_redirects)
    try:
        # An empty state: the whole listing, not a 304 (a preview wants to see the entries).
        result = await make_source(feed, fetcher, environ={} if environ is None else environ).poll({})
    finally:
        if own_fetcher:
            await fetcher.aclose()
    items = _unique(result.items)
    if not configured:
        shown = _newest_first(items)[:limit]
        return Preview(feed, False, False, [PreviewEntry(i, None, ()) for i in shown], len(items))
    own_store = store is None and database is not None and Path(database).exists()
    if own_store:
        from feedrelay.store import Store

        store = Store(database, readonly=True)  # type: ignore[arg-type]
    try:
        return _decide(feed, items, store, defaults, limit, time.time() if now is None else now)
    finally:
        if own_store:
            store.close()


def _decide(feed: Feed, items: list[Item], store: Any, defaults: Defaults, limit: int, now: float) -> Preview:
    from feedrelay import render
    from feedrelay.decide.decider import route
    from feedrelay.registry import is_security
    from feedrelay.runtime.pipeline import as_synced, plan_poll

    row = as_synced(store.feed(feed.name) if store is not None else None, feed)
    if store is not None and is_security(feed.kind) and store.db["epss"].exists():
        from feedrelay.store.epss import EPSS

        items = EPSS(store).enrich(items)  # as a poll sees them (and shows them) when EPSS is used
    plan, known = plan_poll(feed, row, items, store)
    posted: set[tuple[str, str]] = set()
    if plan.intents:
        deliveries = render.deliveries(plan.intents)
        if store is not None:
            from feedrelay.delivery.outbox import Outbox

            deliveries = Outbox(store).admit(deliveries, window=defaults.dedupe_window, now=now,
                                             except_feed=feed.name)
        posted = {(d.channel, d.item_key) for d in deliveries}
    candidates = {i.item.key for i in plan.intents}
    shown = _newest_first(items)[:limit]
    _, verdicts = route(feed, shown)  # every route's filter, for the reason shown beside each action
    by_item: dict[str, list[Any]] = {}
    for v in verdicts:
        by_item.setdefault(v.item.key, []).append(v)
    window = format_duration(defaults.dedupe_window)
    entries = []
    for item in shown:
        out = []
        for v in by_item.get(item.key, []):
            reason = v.decision.reason
            if (v.channel, item.key) in posted:
                out.append(PreviewVerdict(v.channel, "post", reason))
            elif item.key in known:
                out.append(PreviewVerdict(v.channel, "seen", f"already remembered, never posted twice ({reason})"))
            elif v.decision.undecided:  # a filter out of time: judged again at the next poll
                out.append(PreviewVerdict(v.channel, "hold", reason))
            elif not v.decision.passed:
                out.append(PreviewVerdict(v.channel, "skip", reason))
            elif plan.first_poll:
                out.append(PreviewVerdict(v.channel, "skip", f"first poll: remembered, not posted (backlog = "
                                                             f"{feed.backlog}); {reason}"))
            elif plan.moved and item.key not in candidates:
                out.append(PreviewVerdict(v.channel, "skip", "listed below what the feed had at its old URL: "
                                                             f"remembered as its archive, not posted ({reason})"))
            elif item.key not in candidates:
                out.append(PreviewVerdict(v.channel, "seen", "the feed had this entry under another id: remembered, "
                                                             f"not posted again ({reason})"))
            else:
                out.append(PreviewVerdict(v.channel, "skip", f"the same article went to {v.channel} from another "
                                                             f"feed within dedupe_window ({window})"))
        entries.append(PreviewEntry(item, item.key in known if store is not None else None, tuple(out)))
    return Preview(feed, True, plan.first_poll, entries, len(items))


def _unique(items: list[Item]) -> list[Item]:
    from feedrelay.decide.decider import unique

    return unique(items)


def _newest_first(items: list[Item]) -> list[Item]:
    from feedrelay.decide.decider import oldest_first

    return list(reversed(oldest_first(items)))
