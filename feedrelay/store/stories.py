"""What each channel was told about a story, and the unscored CVEs routes hold: the lifecycle's memory.

Each story keeps its first message's ts (set by :meth:`feedrelay.delivery.outbox.Outbox.mark_sent`) and a compact
state (a few fields, not the record), kept for `retention` after its last change.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from feedrelay.decide.lifecycle import Hold, Story, StoryWrite
from feedrelay.model import Item
from feedrelay.store import Store, in_chunks


def item_json(item: Item) -> str:
    return json.dumps({"key": item.key, "title": item.title, "link": item.link, "summary": item.summary,
                       "content": item.content[:3000], "categories": list(item.categories), "author": item.author,
                       "published": item.published.isoformat() if item.published else None, "kind": item.kind,
                       "extra": item.extra})


def item_from_json(text: str) -> Item:
    d = json.loads(text)
    published = datetime.fromisoformat(d["published"]) if d.get("published") else None
    return Item(d["key"], d["title"], d["link"], d.get("summary", ""), d.get("content", ""),
                tuple(d.get("categories", ())), d.get("author", ""), published, d.get("kind", "post"),
                d.get("extra") or {})


class Stories:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    def get(self, channels: Iterable[str], stories: Iterable[str]) -> dict[tuple[str, str], Story]:
        channels = sorted(set(channels))
        found: dict[tuple[str, str], Story] = {}
        if not channels:
            return found
        marks_ch = ",".join("?" * len(channels))
        for chunk, marks in in_chunks(sorted(set(stories)), 400):
            rows = self.db.execute(f"SELECT channel, story, state, first_posted FROM stories WHERE channel IN "
                                   f"({marks_ch}) AND story IN ({marks})", [*channels, *chunk])
            for channel, story, state, first_posted in rows:
                found[(channel, story)] = Story(json.loads(state) if state else None, first_posted)
        return found

    def write(self, feed: str, writes: Iterable[StoryWrite], now: float | None = None) -> None:
        """Inside the poll's transaction, with the outbox rows they go with."""
        now = time.time() if now is None else now
        self.db.conn.executemany(
            "INSERT INTO stories (channel, story, feed, state, first_posted, updated) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (channel, story) DO UPDATE SET state = excluded.state, updated = excluded.updated",
            [(w.channel, w.story, feed, json.dumps(w.state), now, now) for w in writes])

    def holds(self, feed: str) -> dict[tuple[str, str], Hold]:
        rows = self.db.execute("SELECT channel, key, since, item FROM holds WHERE feed = ?", [feed])
        return {(ch, key): Hold(ch, key, since, item_from_json(item)) for ch, key, since, item in rows}

    def hold(self, feed: str, holds: Iterable[Hold], released: Iterable[tuple[str, str]]) -> None:
        self.db.conn.executemany("DELETE FROM holds WHERE feed = ? AND channel = ? AND key = ?",
                                 [(feed, ch, key) for ch, key in released])
        self.db.conn.executemany(
            "INSERT INTO holds (feed, channel, key, since, item) VALUES (?, ?, ?, ?, ?) ON CONFLICT "
            "(feed, channel, key) DO UPDATE SET item = excluded.item",
            [(feed, h.channel, h.key, h.since, item_json(h.item)) for h in holds])

    def held(self) -> dict[str, dict[str, Any]]:
        """Per feed: how many items are held, and since when the oldest (for `status`)."""
        return {feed: {"held": n, "oldest": oldest} for feed, n, oldest in self.db.execute(
            "SELECT feed, COUNT(*), MIN(since) FROM holds GROUP BY feed")}

    def prune(self, *, retention: float, now: float | None = None) -> int:
        """Forget stories unchanged for ``retention`` (a CVE modified after that is news again), and holds as old."""
        cutoff = (time.time() if now is None else now) - retention
        n = self.db.execute("DELETE FROM stories WHERE updated < ?", [cutoff]).rowcount
        return n + self.db.execute("DELETE FROM holds WHERE since < ?", [cutoff]).rowcount
