"""Sources turn a remote service into items. They know nothing of Slack or of the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from feedrelay.config import Feed
from feedrelay.ingest.fetch import Fetcher
from feedrelay.model import Item


@dataclass
class PollResult:
    items: list[Item]  # what the source currently lists (RSS) or what changed (NVD window)
    state: dict[str, Any]  # persisted with the items, in the same transaction (validators, watermarks)
    unchanged: bool = False  # 304 or identical body: nothing to decide
    # e.g. a malformed feed that still yielded entries. On an unchanged result, None keeps the feed's
    # earlier warning and "" clears it.
    warning: str | None = None
    listing: bool = True  # items are the source's full current listing (used to size pruning)
    notes: list[str] = field(default_factory=list)
    more: bool = False  # the source stopped early to bound memory (an NVD catch-up): poll again at once


class SourceError(Exception):
    """A poll that failed; the message is for the user and names what to do where it can."""

    def __init__(self, message: str, *, retry_after: float | None = None, config_problem: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.config_problem = config_problem


class Source(Protocol):
    async def poll(self, state: dict[str, Any]) -> PollResult: ...


def make_source(feed: Feed, fetcher: Fetcher, parse: Any = None) -> Source:
    """The source for a configured feed. ``parse`` runs feed parsing (e.g. in a worker pool)."""
    if feed.kind == "rss":
        from feedrelay.sources.rss import RSSSource

        return RSSSource(feed, fetcher, parse)
    if feed.kind == "nvd":
        from feedrelay.sources.nvd import NVDSource

        return NVDSource(feed, fetcher)
    if feed.kind == "kev":
        from feedrelay.sources.kev import KEVSource

        return KEVSource(feed, fetcher)
    raise ValueError(f"unknown feed type {feed.kind!r}")
