"""RSS / Atom / RDF feeds: fetch with validators, parse the bytes we fetched, yield items."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any

from ..config import Feed
from ..fetch import Fetcher, FetchError, public_url
from ..parsing import ParsedFeed, parse_feed
from . import PollResult, SourceError

ACCEPT = ("application/rss+xml, application/atom+xml, application/rdf+xml, application/feed+json, "
          "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.9, */*;q=0.5")


Parser = Callable[..., Any]


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
            )
        except FetchError as exc:
            raise SourceError(str(exc), retry_after=exc.retry_after) from None
        if resp.status == 304:
            return PollResult([], state, unchanged=True)
        # Publishers move feeds (to https, off FeedBurner) and redirect for a while: say where to, once per change.
        moved = f"moved permanently to {public_url(resp.moved_to)}; set url to it in the config" \
            if resp.moved_to else None
        digest = hashlib.sha256(resp.body).hexdigest()
        new_state = {"url": self.feed.url, "etag": resp.etag, "last_modified": resp.last_modified,
                     "body_hash": digest}
        if same_url and state.get("body_hash") == digest:
            # Servers without validators resend the same bytes; skip the parse.
            return PollResult([], new_state, unchanged=True, warning=moved)
        args = (resp.body, resp.url, resp.headers.get("content-type", ""), resp.headers.get("content-location", ""))
        parsed: ParsedFeed = await (self.parse(parse_feed, *args) if self.parse else
                                    asyncio.to_thread(parse_feed, *args))
        if parsed.error:
            raise SourceError(parsed.error)
        return PollResult(parsed.items, new_state, warning="; ".join(w for w in (moved, parsed.warning) if w) or None)
