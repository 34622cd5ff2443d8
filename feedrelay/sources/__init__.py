"""Sources turn a remote service into items. They know nothing of Slack or of the database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from feedrelay.config import Feed
from feedrelay.ingest.fetch import Fetcher
from feedrelay.model import Item
from feedrelay.registry import SourceContext, build_source


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
    """What a feed type provides: ``poll(state)`` returns the current items and the state to keep until the next
    poll (validators, a watermark), or raises :class:`SourceError`. Register a factory for it by kind with
    :func:`feedrelay.register_source`."""

    async def poll(self, state: dict[str, Any]) -> PollResult: ...


def make_source(feed: Feed, fetcher: Fetcher, parse: Any = None, *, environ: Mapping[str, str] | None = None
                ) -> Source:
    """The source for a configured feed, from the factory registered for its type (see feedrelay.registry).
    ``parse`` runs feed parsing (e.g. in a worker pool); ``environ`` is where the source reads its secrets
    (the Relay's environment: never the process's unless the Relay was given it)."""
    return build_source(feed, SourceContext(fetcher, {} if environ is None else environ, parse))
