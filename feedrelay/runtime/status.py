"""What `feedrelay status` shows, as data: read from the database, read-only.

It works while another process runs the daemon on the same database (WAL lets it read), while the config is
broken (pass ``config=None``: the database alone is shown), and before the first poll (no database yet: the
configured feeds and channels, never polled and with nothing sent).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from feedrelay.config import Config


@dataclass(frozen=True)
class FeedStatus:
    feed: str
    url: str  # without credentials (see fetch.public_url)
    configured: bool  # False: removed from the config, with messages still waiting
    last_poll: float | None
    last_success: float | None
    error: str | None
    failing_since: float | None
    consecutive_errors: int
    warning: str | None
    items: int  # remembered entries
    pending: int
    failed: int
    waiting_until: float | None  # the server asked for a pause (Retry-After) until then
    held: int = 0  # unscored CVEs a route holds for a score (include_unscored = "after …")
    held_since: float | None = None  # when the oldest of them was first held

    @property
    def state(self) -> str:
        """One line for a person: "ok", "never polled", "ERROR (3×): …"."""
        health = "never polled" if self.last_poll is None else "ok"
        if self.error:
            health = f"ERROR ({self.consecutive_errors}×): {self.error}"
        elif self.warning:
            health = f"ok, warning: {self.warning}"
        if self.waiting_until:
            until = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.waiting_until))
            health += f"; not polled until {until}, as the server asked (Retry-After)"
        if not self.configured:
            health = "removed from config; " + health
        return health


@dataclass(frozen=True)
class ChannelStatus:
    name: str
    pending: int = 0
    failed: int = 0
    sent: int = 0
    oldest_pending: float | None = None
    failing: str | None = None  # a permanent Slack error: nothing is sent until someone acts
    last_error: str | None = None
    configured: bool | None = None  # None: not known (the config could not be read)

    def state(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        health = f"FAILING: {self.failing}" if self.failing else "ok" if self.sent else "nothing sent yet"
        if self.pending and self.last_error and not self.failing:
            health = f"retrying: {self.last_error} (oldest waiting {ago(self.oldest_pending, now)})"
        if self.configured is False:
            # Nothing sends these: a last error or "ok" would say otherwise.
            health = "removed from config; " + (f"{self.pending} message(s) wait until it is added back"
                                                if self.pending else "nothing waits")
        return health


@dataclass(frozen=True)
class EpssStatus:
    """EPSS scores: the loaded file's score date and rows, the last check, the last error (scores kept)."""

    url: str
    score_date: str = ""
    model_version: str = ""
    rows: int = 0
    loaded: float | None = None
    checked: float | None = None
    error: str = ""
    failing_since: float | None = None
    candidates: int = 0  # CVEs routes wait on for a higher EPSS

    def state(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        scores = f"{self.rows:,} scores of {self.score_date or 'an undated file'}" if self.rows else "no scores yet"
        health = f"ERROR: {self.error}" if self.error else "ok" if self.checked else "never checked"
        checked = f", checked {ago(self.checked, now)}" if self.checked else ""
        return f"{scores}{checked}; {health}"


@dataclass(frozen=True)
class Status:
    database: str
    feeds: list[FeedStatus]
    channels: dict[str, ChannelStatus]
    polled: bool = True  # False: no database yet, nothing was polled
    notes: list[str] = field(default_factory=list)
    epss: EpssStatus | None = None  # None: EPSS is not used

    @property
    def needs_attention(self) -> bool:
        """A feed failing, a channel failing or messages rejected: what the runbooks are for."""
        return any(f.error for f in self.feeds) or any(c.failing or c.failed for c in self.channels.values()) or \
            bool(self.epss and self.epss.error)

    def to_json(self) -> dict[str, Any]:
        """What `feedrelay status --json` prints."""
        channels = {}
        for name, c in self.channels.items():
            row = asdict(c)
            del row["name"]
            if c.configured is None:
                del row["configured"]
            channels[name] = row
        out: dict[str, Any] = {"feeds": [asdict(f) for f in self.feeds], "channels": channels}
        if self.epss is not None:
            out["epss"] = asdict(self.epss)
        return out


def read_status(database: str, config: Config | None = None, *, now: float | None = None) -> Status:
    """The status of a database, opened read-only; ``config`` says what is configured (None: unknown). Raises
    :class:`~feedrelay.store.StoreError` or :class:`sqlite3.DatabaseError` for a database that cannot be read."""
    if not Path(database).exists():
        if config is None:
            from feedrelay.store import StoreError

            raise StoreError(f"{database}: no database yet; run `feedrelay once` or `feedrelay run` first")
        return _not_polled(database, config)
    from feedrelay.store import Store

    store = Store(database, readonly=True)
    try:
        # status is where people look when something is off: check the file's structure too.
        if (check := store.db.execute("PRAGMA quick_check(1)").fetchone()[0]) != "ok":
            raise sqlite3.DatabaseError(f"database disk image is malformed: {' '.join(check.split())}")
        return status_of(store, config, now=now)
    finally:
        store.close()


def status_of(store: Any, config: Config | None, *, now: float | None = None) -> Status:
    """The status from an open :class:`~feedrelay.store.Store` (a running Relay's own, or a read-only one)."""
    from feedrelay.delivery.outbox import Outbox
    from feedrelay.ingest.fetch import public_url

    now = time.time() if now is None else now
    rows = store.feeds()
    items = store.count_items()
    outbox = Outbox(store)
    per_feed = outbox.feed_stats()
    per_channel = outbox.channel_stats()
    from feedrelay.store.stories import Stories

    holds = Stories(store).held() if store.db["holds"].exists() else {}  # (none before schema 3)
    configured = {f.name for f in config.feeds} if config else {f.name for f in rows if f.active}
    feeds = []
    for f in rows:
        if f.name not in configured and not per_feed.get(f.name):
            continue
        d = per_feed.get(f.name, {})
        feeds.append(FeedStatus(
            feed=f.name, url=public_url(f.url), configured=f.name in configured, last_poll=f.last_poll,
            last_success=f.last_success, error=f.last_error, failing_since=f.error_since,
            consecutive_errors=f.errors, warning=f.warning, items=items.get(f.name, 0), pending=d.get("pending", 0),
            failed=d.get("failed", 0), waiting_until=f.not_before if f.not_before and f.not_before > now else None,
            held=holds.get(f.name, {}).get("held", 0), held_since=holds.get(f.name, {}).get("oldest")))
    urls = {f.name: f.url for f in config.feeds} if config else {}
    feeds += [_never_polled(name, urls.get(name, "")) for name in sorted(configured - {f.name for f in rows})]
    channels = {name: ChannelStatus(name=name, configured=(name in config.channels) if config else None, **stats)
                for name, stats in per_channel.items()}
    if config:
        for name in config.channels.keys() - per_channel.keys():  # (a new channel is there too, with nothing yet)
            channels[name] = ChannelStatus(name=name, configured=True)
    return Status(database=store.path, feeds=feeds, channels=channels, epss=_epss(store, config))


def _epss(store: Any, config: Config | None) -> EpssStatus | None:
    from feedrelay.ingest.fetch import public_url
    from feedrelay.store.epss import EPSS

    epss = EPSS(store)
    info = epss.info()
    if (config is None or config.epss is None) and not info.url:
        return None
    url = config.epss.url if config and config.epss else info.url
    candidates = epss.counts() if store.db["epss_candidates"].exists() else 0
    return EpssStatus(url=public_url(url), score_date=info.score_date, model_version=info.model_version,
                      rows=info.rows, loaded=info.loaded, checked=info.checked, error=info.error,
                      failing_since=info.error_since, candidates=candidates)


def _never_polled(name: str, url: str) -> FeedStatus:
    from feedrelay.ingest.fetch import public_url

    return FeedStatus(feed=name, url=public_url(url) if url else "", configured=True, last_poll=None,
                      last_success=None, error=None, failing_since=None, consecutive_errors=0, warning=None,
                      items=0, pending=0, failed=0, waiting_until=None)


def _not_polled(database: str, config: Config) -> Status:
    """Before the first poll: what is configured, all of it waiting."""
    feeds = sorted(config.feeds, key=lambda f: f.name)
    return Status(database=database, feeds=[_never_polled(f.name, f.url) for f in feeds],
                  channels={name: ChannelStatus(name=name, configured=True) for name in sorted(config.channels)},
                  polled=False, epss=EpssStatus(url=_public(config.epss.url)) if config.epss else None,
                  notes=[f"{database}: no database yet: nothing has been polled; `feedrelay once` or `feedrelay run` "
                         "creates it"])


def _public(url: str) -> str:
    from feedrelay.ingest.fetch import public_url

    return public_url(url)


def ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    return rough_duration(max(0.0, now - ts)) + " ago"


def rough_duration(seconds: float) -> str:
    """Rounded to one unit: right for an age ("2h ago"), wrong for a configured value (see format_duration)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"
