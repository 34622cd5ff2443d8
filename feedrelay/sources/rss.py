"""RSS / Atom / RDF feeds: fetch with validators, parse the bytes we fetched, yield items."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any

from feedrelay.config import Feed
from feedrelay.ingest.fetch import Fetcher, FetchError, public_url
from feedrelay.ingest.parsing import ParsedFeed, parse_feed
from feedrelay.sources import PollResult, SourceError

ACCEPT = ("application/rss+xml, application/atom+xml, application/rdf+xml, application/feed+json, "
          "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.9, */*;q=0.5")


Parser = Callable[..., Any]
MOVED = "moved permanently to"


def _warnings(*warnings: str | None) -> str:
    """This poll's warnings, "" for none (which clears an earlier one: see PollResult.warning)."""
    return "; ".join(w for w in warnings if w)


def moved_warning(moved_to: str | None) -> str | None:
    # Publishers move feeds (to https, off FeedBurner) and redirect for a while: say where to.
    return f"{MOVED} {public_url(moved_to)} (set url to it in the config)" if moved_to else None


class RSSSource:
    def __init__(self, feed: Feed, fetcher: Fetcher, parse: Parser | None = None) -> None:
        self.feed = feed
        self.fetcher = fetcher
        self.parse = parse  # async (fn, *args) -> result; defaults to a thread

    async def poll(self, state: dict[str, Any]) -> PollResult:
        same_url = state.get("url") == self.feed.url
        try:
            resp = await self.fetcher.get(
                self.feed.url,
                etag=state.get("etag") if same_url else None,
                last_modified=state.get("last_modified") if same_url else None,
                accept=ACCEPT,
                options=self.feed.http,
            )
        except FetchError as exc:
            raise SourceError(str(exc), retry_after=exc.retry_after, config_problem=exc.config_problem) from None
        moved = moved_warning(resp.moved_to)
        if resp.status == 304:
            # The listing's own warning (a malformed feed) still holds; the redirect is as of this fetch.
            return PollResult([], state, unchanged=True, warning=_warnings(moved, state.get("parse_warning")))
        digest = hashlib.sha256(resp.body).hexdigest()
        new_state = {"url": self.feed.url, "etag": resp.etag, "last_modified": resp.last_modified,
                     "body_hash": digest, "parse_warning": state.get("parse_warning") if same_url else None}
        if same_url and state.get("body_hash") == digest:
            # Servers without validators resend the same bytes; skip the parse.
            return PollResult([], new_state, unchanged=True, warning=_warnings(moved, new_state["parse_warning"]))
        args = (resp.body, resp.url, resp.headers.get("content-type", ""), resp.headers.get("content-location", ""))
        parsed: ParsedFeed = await (self.parse(parse_feed, *args) if self.parse else
                                    asyncio.to_thread(parse_feed, *args))
        if parsed.error:
            raise SourceError(parsed.error)
        new_state["parse_warning"] = parsed.warning
        return PollResult(parsed.items, new_state, warning=_warnings(moved, parsed.warning) or None)
