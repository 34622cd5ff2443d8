"""SQLite storage: feed state and the remembered items used for dedupe.

One connection, used from one thread (the event loop's). WAL mode lets `feedrelay status` read while
the daemon writes. The schema is versioned; migrations run at open.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from feedrelay.model import Item, Lookalike, comparable_title
from feedrelay.store.errors import DB_ERRORS, StoreError, damaged, describe, explain, in_chunks
from feedrelay.store.lock import DatabaseLock
from feedrelay.store.schema import SCHEMA, SCHEMA_VERSION, STORIES

__all__ = ["DB_ERRORS", "SCHEMA_VERSION", "DatabaseLock", "FeedRow", "Store", "StoreError", "damaged", "describe",
           "explain", "in_chunks"]


@dataclass
class FeedRow:
    name: str
    url: str
    kind: str
    active: bool
    initialized: bool
    state: dict[str, Any]
    last_poll: float | None
    last_success: float | None
    last_error: str | None
    error_since: float | None
    errors: int
    warning: str | None
    listed: int
    not_before: float | None
    url_changed: int = 0
    keys_version: int = 2
    listing_gen: int = 0


class Store:
    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = str(path)
        self._feed_columns: list[str] | None = None
        try:
            if readonly:
                uri = f"file:{Path(self.path).resolve()}?mode=ro"
                conn = sqlite3.connect(uri, uri=True, timeout=10)
            else:
                if self.path != ":memory:":
                    Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=30)
            self.db = sqlite_utils.Database(conn)
            if not readonly:
                self.db.enable_wal()
                # NORMAL in WAL is durable against application crashes, which is what we promise.
                self.db.execute("PRAGMA synchronous=NORMAL")
                self._migrate()
            self.db.execute("SELECT 1 FROM meta LIMIT 1")
        except sqlite3.DatabaseError as exc:
            raise StoreError(explain(self.path, exc)) from None

    def close(self) -> None:
        self.db.conn.close()

    # --- transactions and schema ---------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes; on any error nothing of the group is kept."""
        try:
            with self.db.atomic():
                yield
        except sqlite3.DatabaseError as exc:
            raise StoreError(explain(self.path, exc)) from None

    def _migrate(self) -> None:
        if self.db["meta"].exists():
            row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
        else:
            version = SCHEMA_VERSION  # a new file gets the current schema below
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: written by a newer feedrelay (schema {version}, this one knows "
                             f"{SCHEMA_VERSION}); upgrade feedrelay or use another --db")
        if version < 2 and self.db["items"].exists() and "last_gen" not in self.db["items"].columns_dict:
            self._migrate_to_2()
        if version < 3 and self.db["outbox"].exists() and "action" not in self.db["outbox"].columns_dict:
            self._migrate_to_3()
        self.db.executescript(SCHEMA)  # (creates what is missing: new tables and indexes)
        # Since when CVEs are judged again as they change (a new file: since now; an upgrade: since the upgrade).
        self.db.execute("INSERT OR IGNORE INTO meta VALUES ('lifecycle_since', ?)", [repr(time.time())])
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])

    def _migrate_to_2(self) -> None:
        """Schema 1 → 2 in one transaction (a crash leaves schema 1, and the next start does it again)."""
        with self.transaction():
            for column in ("last_seen REAL", "last_gen INTEGER NOT NULL DEFAULT 0", "published REAL"):
                self.db.execute(f"ALTER TABLE items ADD COLUMN {column}")
            for column in ("url_changed INTEGER NOT NULL DEFAULT 0", "keys_version INTEGER NOT NULL DEFAULT 2",
                           "listing_gen INTEGER NOT NULL DEFAULT 0"):
                self.db.execute(f"ALTER TABLE feeds ADD COLUMN {column}")
            # Feeds polled before the upgrade match their entries' old keys once, at their next parsed poll.
            self.db.execute("UPDATE feeds SET keys_version = 1")
            # When each was last listed is unknown: say "now", so nothing is pruned before the feed's next change
            # records it (pruning merely starts one retention period later).
            self.db.execute("UPDATE items SET last_seen = ?", [time.time()])
            # Schema 1 kept the size of each feed's last listing: its newest that many items stand for it.
            for name, listed in self.db.execute("SELECT name, listed FROM feeds WHERE listed > 0").fetchall():
                self.db.execute("UPDATE items SET last_gen = 1 WHERE feed = ? AND key IN "
                                "(SELECT key FROM items WHERE feed = ? ORDER BY first_seen DESC LIMIT ?)",
                                [name, name, listed])
                self.db.execute("UPDATE feeds SET listing_gen = 1 WHERE name = ?", [name])

    def _migrate_to_3(self) -> None:
        """Schema 2 → 3 in one transaction: outbox rows get an action; CVEs the old version posted become stories
        (of unknown state), so a later change of one is a reply in its thread, not a second post."""
        with self.transaction():
            self.db.execute("ALTER TABLE outbox ADD COLUMN action TEXT NOT NULL DEFAULT 'post'")
            self.db.execute("ALTER TABLE outbox ADD COLUMN story TEXT")
            self.db.execute(STORIES)
            self.db.execute("UPDATE outbox SET story = item_key WHERE dedupe_key LIKE 'cve:%' "
                            "OR dedupe_key LIKE 'kev:%'")
            self.db.execute(
                "INSERT OR IGNORE INTO stories (channel, story, feed, ts, state, first_posted, updated) "
                "SELECT channel, story, feed, ts, NULL, created, created FROM outbox WHERE story IS NOT NULL "
                "AND status != 'failed' ORDER BY id")
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('lifecycle_since', ?)", [repr(time.time())])

    def lifecycle_since(self) -> float:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'lifecycle_since'").fetchone()
        return float(row[0]) if row else 0.0

    def first_seen(self, feed: str, keys: list[str]) -> dict[str, float]:
        """When this feed first saw each of these remembered keys."""
        out: dict[str, float] = {}
        for chunk, marks in in_chunks(keys):
            rows = self.db.execute(f"SELECT key, first_seen FROM items WHERE feed = ? AND key IN ({marks})",
                                   [feed, *chunk])
            out.update((r[0], r[1]) for r in rows)
        return out

    # --- feeds ---------------------------------------------------------------------------------

    def sync_feeds(self, feeds: Iterable[tuple[str, str, str]]) -> None:
        """Mark configured feeds active and the rest inactive. A feed coming back starts afresh
        (remembers what it lists, posts nothing), as a newly added one does."""
        feeds = list(feeds)
        names = [n for n, _, _ in feeds]
        with self.transaction():
            for name, url, kind in feeds:
                self.db.execute(
                    "INSERT INTO feeds (name, url, kind) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                    "url = excluded.url, kind = excluded.kind, "
                    # A new URL is a new subscription: remember its listing, post none of it.
                    "initialized = CASE WHEN active = 0 OR feeds.kind != excluded.kind OR feeds.url != excluded.url "
                    "THEN 0 ELSE initialized END, "
                    # ...and its validators: a 304 to a feed starting afresh would mark it polled with nothing
                    # remembered (a feed re-added after its items were pruned), and its next change post it all.
                    "state = CASE WHEN active = 0 OR feeds.kind != excluded.kind OR feeds.url != excluded.url "
                    "THEN '{}' ELSE state END, "
                    # A feed that keeps its name and type but moves (a new address for the same feed, often) gets
                    # a first poll that posts what is new if the listing overlaps what the feed had.
                    "url_changed = CASE WHEN active = 0 OR feeds.kind != excluded.kind THEN 0 "
                    "WHEN feeds.url != excluded.url THEN 1 ELSE url_changed END, "
                    # Retry-After was the old server's request.
                    "not_before = CASE WHEN feeds.url != excluded.url OR feeds.kind != excluded.kind "
                    "THEN NULL ELSE not_before END, "
                    "active = 1",
                    [name, url, kind],
                )
            marks = ",".join("?" * len(names))
            self.db.execute(f"UPDATE feeds SET active = 0 WHERE name NOT IN ({marks})", names)

    def ensure_feed(self, name: str, url: str, kind: str) -> FeedRow:
        self.db.execute("INSERT INTO feeds (name, url, kind) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                        [name, url, kind])
        row = self.feed(name)
        assert row is not None
        return row

    def feed(self, name: str) -> FeedRow | None:
        row = self.db.execute("SELECT * FROM feeds WHERE name = ?", [name]).fetchone()
        return self._row(row) if row else None

    def feeds(self) -> list[FeedRow]:
        return [self._row(r) for r in self.db.execute("SELECT * FROM feeds ORDER BY name").fetchall()]

    def feed_health(self) -> list[tuple[str, bool, int, float | None, float | None]]:
        """(name, failing, consecutive errors, last success, last poll) of every feed: what /metrics needs,
        without decoding each feed's state."""
        return [(r[0], bool(r[1]), r[2], r[3], r[4]) for r in self.db.execute(
            "SELECT name, last_error IS NOT NULL, errors, last_success, last_poll FROM feeds ORDER BY name")]

    def _row(self, row: tuple[Any, ...]) -> FeedRow:
        if self._feed_columns is None:  # read once: this runs for every feed on every poll
            self._feed_columns = [d[0] for d in self.db.execute("SELECT * FROM feeds LIMIT 0").description]
        data = dict(zip(self._feed_columns, row, strict=True))
        data["state"] = json.loads(data["state"] or "{}")
        data["active"] = bool(data["active"])
        data["initialized"] = bool(data["initialized"])
        return FeedRow(**data)

    def record_success(self, name: str, state: dict[str, Any], *, warning: str | None, listed: int | None,
                       listing_gen: int | None = None, now: float | None = None) -> None:
        """A successful poll. ``listing_gen``: the number of the listing it parsed (None when unchanged: a 304
        or the same bytes, which neither starts a listing nor moves the feed past its upgrade)."""
        now = time.time() if now is None else now
        self.db.execute(
            "UPDATE feeds SET state = ?, last_poll = ?, last_success = ?, last_error = NULL, error_since = NULL, "
            "errors = 0, warning = ?, initialized = 1, listed = COALESCE(?, listed), not_before = NULL, "
            "url_changed = 0, keys_version = CASE WHEN ? IS NULL THEN keys_version ELSE 2 END, "
            "listing_gen = COALESCE(?, listing_gen) WHERE name = ?",
            [json.dumps(state), now, now, warning, listed, listing_gen, listing_gen, name],
        )

    def record_error(self, name: str, error: str, *, retry_after: float | None = None,
                     now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self.transaction():
            self.db.execute(
                "UPDATE feeds SET last_poll = ?, last_error = ?, error_since = COALESCE(error_since, ?), "
                "errors = errors + 1, not_before = ? WHERE name = ?",
                [now, error[:1000], now, now + retry_after if retry_after else None, name],
            )

    def clock_stepped_back(self, seconds: float, now: float) -> None:
        """The wall clock went back: a server's Retry-After ends as many seconds after it as it did."""
        self.db.execute("UPDATE feeds SET not_before = not_before - ? WHERE not_before > ?", [seconds, now])

    # --- remembered items ----------------------------------------------------------------------

    def known_keys(self, feed: str, keys: list[str]) -> set[str]:
        known: set[str] = set()
        for chunk, marks in in_chunks(keys):
            rows = self.db.execute(f"SELECT key FROM items WHERE feed = ? AND key IN ({marks})", [feed, *chunk])
            known.update(r[0] for r in rows)
        return known

    def lookalikes(self, feed: str, items: list[Item], listing_gen: int) -> dict[str, list[Lookalike]]:
        """For each of these items' dedupe keys (link and title), the remembered items of this feed that have it,
        posted or not. The decider tells re-issued ids from new entries that look alike."""
        wanted = {i.dedupe_key for i in items if i.dedupe_key}
        # Rows written before schema 2 hold the bare link as their dedupe key: match those on the title too.
        legacy: dict[str, list[Item]] = {}
        for i in items:
            if i.legacy_dedupe_key:
                legacy.setdefault(i.legacy_dedupe_key, []).append(i)
        found: dict[str, list[Lookalike]] = {}
        for chunk, marks in in_chunks(sorted(wanted | legacy.keys())):
            rows = self.db.execute(f"SELECT dedupe_key, title, key, published, last_gen FROM items WHERE feed = ? "
                                   f"AND dedupe_key IN ({marks})", [feed, *chunk])
            for dedupe_key, title, key, published, gen in rows:
                match = Lookalike(key, published, previous=gen == listing_gen)
                if dedupe_key in wanted:
                    found.setdefault(dedupe_key, []).append(match)
                for item in legacy.get(dedupe_key, ()):
                    if comparable_title(title) == comparable_title(item.title):
                        found.setdefault(item.dedupe_key, []).append(match)
        return found

    def remembered_before_upgrade(self, feed: str, items: list[Item]) -> set[str]:
        """Keys of these items that the feed remembered before schema 2 under their old key (``legacy_key``)
        and the same title: the same entries, not new ones."""
        wanted: dict[str, list[Item]] = {}
        for i in items:
            if i.legacy_key:
                wanted.setdefault(i.legacy_key, []).append(i)
        found: set[str] = set()
        for chunk, marks in in_chunks(sorted(wanted)):
            rows = self.db.execute(f"SELECT key, title FROM items WHERE feed = ? AND key IN ({marks})", [feed, *chunk])
            for key, title in rows:
                # (one old key could stand for several entries, e.g. a changelog's #anchors: only its title's is it)
                found.update(i.key for i in wanted[key] if comparable_title(i.title) == comparable_title(title))
        return found

    def remember(self, feed: str, items: Iterable[Item], now: float | None = None, listing_gen: int = 0) -> int:
        """Store new items of listing number ``listing_gen`` (call inside :meth:`transaction`). Returns how many
        were new."""
        now = time.time() if now is None else now
        cur = self.db.conn.executemany(
            "INSERT INTO items (feed, key, dedupe_key, title, first_seen, last_seen, last_gen, published) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(feed, i.key, i.dedupe_key, i.title[:200], now, now, listing_gen,
              i.published.timestamp() if i.published else None) for i in items],
        )
        return cur.rowcount

    def still_listed(self, feed: str, keys: Iterable[str], now: float | None = None, listing_gen: int = 0) -> None:
        """Listing number ``listing_gen`` still has these remembered items (call inside :meth:`transaction`)."""
        now = time.time() if now is None else now
        for chunk, marks in in_chunks(keys):
            self.db.execute(f"UPDATE items SET last_seen = ?, last_gen = ? WHERE feed = ? AND key IN ({marks})",
                            [now, listing_gen, feed, *chunk])

    def count_items(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT feed, COUNT(*) FROM items GROUP BY feed").fetchall())

    def prune(self, *, retention: float, floor: int = 100, now: float | None = None) -> int:
        """Forget items no listing has had for ``retention``. Never forget what the feed's latest listing has (an
        old entry still in a feed must never look new), nor its newest ``floor`` items: one short listing (a
        publisher's hiccup) must not make the rest of a catalog look new when it comes back."""
        now = time.time() if now is None else now
        cutoff = now - retention
        removed = 0
        with self.transaction():
            for (name,) in self.db.execute("SELECT name FROM feeds").fetchall():
                # (the latest listing by its number, not its time: a clock stepped back must not unprotect it)
                cur = self.db.execute(
                    "DELETE FROM items WHERE feed = ? AND last_seen < ? "
                    "AND last_gen != (SELECT listing_gen FROM feeds WHERE name = ?) AND key NOT IN "
                    "(SELECT key FROM items WHERE feed = ? ORDER BY last_gen DESC, last_seen DESC LIMIT ?)",
                    [name, cutoff, name, name, floor],
                )
                removed += cur.rowcount
            # Feeds removed from the config long ago: drop their state entirely.
            self.db.execute(
                "DELETE FROM items WHERE feed IN (SELECT name FROM feeds WHERE active = 0 AND "
                "COALESCE(last_poll, 0) < ?)", [cutoff])
        return removed
