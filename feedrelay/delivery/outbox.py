"""The outbox: one row per (item, channel), written as pending before any network call to Slack and
marked sent only after Slack says ok. A crash, an outage or a rate limit loses nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from feedrelay.model import Delivery
from feedrelay.store import Store, in_chunks


@dataclass(frozen=True)
class Pending:
    id: int
    channel: str
    feed: str
    message: dict[str, Any]
    attempts: int
    next_attempt: float
    created: float
    last_error: str | None = None  # of the last failed attempt
    action: str = "post"  # post | reply | update
    story: str | None = None


class Outbox:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    def enqueue(self, deliveries: Iterable[Delivery], *, window: float, now: float | None = None,
                except_feed: str | None = None) -> list[Delivery]:
        """Queue deliveries (inside the poll's transaction). A delivery whose dedupe key (link and title) already
        went to that channel within ``window`` is skipped: the same article may arrive from two feeds, and an
        alert goes once per incident. Rows of ``except_feed`` do not count: a feed's own entries are told
        apart by the decider (two podcast episodes may share a link and a title)."""
        now = time.time() if now is None else now
        queued = self.admit(deliveries, window=window, now=now, except_feed=except_feed)
        self.db.conn.executemany(
            "INSERT INTO outbox (channel, feed, item_key, dedupe_key, message, created, action, story) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            # A reply's dedupe key is prefixed: it is not the article, and must not stop another feed's post of it.
            [(d.channel, d.feed, d.item_key, d.dedupe_key if d.action == "post" else f"{d.action}:{d.dedupe_key}",
              json.dumps(d.message), now, d.action, d.story or None) for d in queued],
        )
        return queued

    def admit(self, deliveries: Iterable[Delivery], *, window: float, now: float | None = None,
              except_feed: str | None = None) -> list[Delivery]:
        """The deliveries :meth:`enqueue` would queue, without writing (`preview` asks this on a read-only store)."""
        now = time.time() if now is None else now
        deliveries = list(deliveries)
        taken = self._recent(deliveries, since=now - window, except_feed=except_feed)
        admitted: list[Delivery] = []
        batch: set[tuple[str, str, str]] = set()
        for d in deliveries:
            # (a reply or an update is the story's own business: the decider sends it once per change)
            if d.action == "post" and ((d.channel, d.dedupe_key) in taken or (d.channel, d.legacy_dedupe_key) in taken):
                continue
            if (d.channel, d.item_key, d.action) in batch:
                continue  # one item routed to a channel twice goes once (entries alike are the decider's call)
            batch.add((d.channel, d.item_key, d.action))
            admitted.append(d)
        return admitted

    def _recent(self, deliveries: list[Delivery], *, since: float, except_feed: str | None) -> set[tuple[str, str]]:
        """(channel, dedupe_key) pairs among these deliveries that a channel already got since ``since``:
        one query per channel (and 500 keys), not one per delivery."""
        by_channel: dict[str, set[str]] = {}
        for d in deliveries:
            keys = by_channel.setdefault(d.channel, set())
            keys.update(k for k in (d.dedupe_key, d.legacy_dedupe_key) if k)  # "": nothing to compare by
        found: set[tuple[str, str]] = set()
        for channel, key_set in by_channel.items():
            for chunk, marks in in_chunks(sorted(key_set)):
                rows = self.db.execute(
                    "SELECT dedupe_key FROM outbox WHERE channel = ? AND created >= ? AND feed IS NOT ? AND dedupe_key "
                    f"IN ({marks})", [channel, since, except_feed, *chunk])
                found.update((channel, r[0]) for r in rows)
        return found

    def next(self, channel: str) -> Pending | None:
        """The oldest pending delivery for a channel: order within a channel is publication order."""
        row = self.db.execute(
            "SELECT id, channel, feed, message, attempts, next_attempt, created, last_error, action, story FROM outbox "
            "WHERE channel = ? AND status = 'pending' ORDER BY id LIMIT 1",
            [channel],
        ).fetchone()
        if not row:
            return None
        return Pending(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6], row[7], row[8], row[9])

    def mark_sent(self, id: int, ts: str, now: float | None = None, channel_id: str = "") -> None:
        """Slack accepted the row. The first message of a story gives the story its ts (and channel ID), which its
        replies and updates wait for; in the same transaction, so a crash cannot keep one without the other."""
        with self.store.transaction():
            self.db.execute(
                "UPDATE outbox SET status = 'sent', ts = ?, sent_at = ?, last_error = NULL WHERE id = ?",
                [ts, time.time() if now is None else now, id],
            )
            self.db.execute(
                "UPDATE stories SET ts = ?, channel_id = ? WHERE ts IS NULL AND (channel, story) IN "
                "(SELECT channel, story FROM outbox WHERE id = ? AND action = 'post' AND story IS NOT NULL)",
                [ts, channel_id or None, id])

    def parent(self, channel: str, story: str) -> tuple[str, str] | None:
        """The (ts, channel ID) of a story's first message in a channel, once sent; None before (or if forgotten)."""
        row = self.db.execute("SELECT ts, channel_id FROM stories WHERE channel = ? AND story = ?",
                              [channel, story]).fetchone()
        return (row[0], row[1] or "") if row and row[0] else None

    def day_thread(self, channel: str, story: str) -> str | None:
        """The day story (thread = "daily") under whose parent a story's first message was posted, if it was: its
        replies go to that thread, as Slack has one level of threads."""
        row = self.db.execute(
            "SELECT json_extract(message, '$.thread') FROM outbox WHERE channel = ? AND story = ? AND action = 'post' "
            "AND status = 'sent' ORDER BY id LIMIT 1", [channel, story]).fetchone()
        return row[0] if row and row[0] else None

    def last_sent(self, channel: str) -> float | None:
        return self.db.execute("SELECT MAX(sent_at) FROM outbox WHERE channel = ? AND status = 'sent'",
                               [channel]).fetchone()[0]

    def mark_retry(self, id: int, error: str, next_attempt: float) -> None:
        self.db.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt = ? WHERE id = ?",
            [error[:500], next_attempt, id],
        )

    def clock_stepped_back(self, seconds: float, now: float) -> None:
        """The wall clock went back: retries still to come are due as many seconds after it as they were."""
        self.db.execute("UPDATE outbox SET next_attempt = next_attempt - ? "
                        "WHERE status = 'pending' AND next_attempt > ?", [seconds, now])

    def mark_failed(self, id: int, error: str) -> None:
        """Slack rejects this one message for good (e.g. invalid_blocks even as plain text). It stays in the
        table, visible in `status` and retryable with `feedrelay retry`."""
        self.db.execute(
            "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = ? WHERE id = ?",
            [error[:500], id],
        )

    def retry_failed(self, channel: str | None = None) -> int:
        """Queue rejected messages again and end the wait of channels marked failing (someone fixed them)."""
        where, params = ("AND channel = ?", [channel]) if channel else ("", [])
        with self.store.transaction():
            n = self.db.execute(
                f"UPDATE outbox SET status = 'pending', next_attempt = 0 WHERE status = 'failed' {where}", params
            ).rowcount
            self.resume_failing(channel)
        return n

    def resume_failing(self, channel: str | None = None) -> int:
        """Pending rows of failing channels are tried now rather than at the next 5-minute recheck."""
        where, params = ("AND channel = ?", [channel]) if channel else ("", [])
        return self.db.execute(
            "UPDATE outbox SET next_attempt = 0 WHERE status = 'pending' AND channel IN "
            f"(SELECT name FROM channels WHERE failing IS NOT NULL) {where}", params).rowcount

    def set_channel_failing(self, channel: str, error: str | None, now: float | None = None) -> None:
        if error is None:
            self.db.execute("UPDATE channels SET failing = NULL, failing_since = NULL WHERE name = ?", [channel])
            return
        self.db.execute(
            "INSERT INTO channels (name, failing, failing_since) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE "
            "SET failing = excluded.failing, failing_since = COALESCE(channels.failing_since, excluded.failing_since)",
            [channel, error[:500], time.time() if now is None else now],
        )

    def failing_since(self, channel: str) -> float | None:
        row = self.db.execute("SELECT failing_since FROM channels WHERE name = ? AND failing IS NOT NULL",
                              [channel]).fetchone()
        return row[0] if row else None

    def queued_before(self, channel: str, dedupe_key: str) -> bool:
        """Whether a message with this dedupe key was ever queued for the channel (and not yet pruned)."""
        return self.db.execute("SELECT 1 FROM outbox WHERE channel = ? AND dedupe_key = ? LIMIT 1",
                               [channel, dedupe_key]).fetchone() is not None

    def rate_limited_until(self, error: str, now: float | None = None) -> dict[str, float]:
        """Per channel, when the latest rate-limit pause Slack asked for (rows whose last error is ``error``)
        ends, for pauses not yet over."""
        return dict(self.db.execute(
            "SELECT channel, MAX(next_attempt) FROM outbox WHERE status = 'pending' AND last_error = ? "
            "AND next_attempt > ? GROUP BY channel", [error, time.time() if now is None else now]).fetchall())

    def channels_with_pending(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT channel FROM outbox WHERE status = 'pending'")]

    def channel_stats(self) -> dict[str, dict[str, Any]]:
        """Per channel: pending, failed, sent counts, oldest pending age, last error, failing state."""
        stats: dict[str, dict[str, Any]] = {}
        for channel, status, count, oldest in self.db.execute(
            "SELECT channel, status, COUNT(*), MIN(created) FROM outbox GROUP BY channel, status"
        ):
            entry = stats.setdefault(channel, {"pending": 0, "failed": 0, "sent": 0, "oldest_pending": None,
                                               "failing": None, "last_error": None})
            entry[status] = count
            if status == "pending":
                entry["oldest_pending"] = oldest
        for channel, error in self.db.execute(
            "SELECT channel, last_error FROM outbox WHERE status != 'sent' AND last_error IS NOT NULL "
            "ORDER BY id DESC"
        ):
            if channel in stats and stats[channel]["last_error"] is None:
                stats[channel]["last_error"] = error
        for channel, failing in self.db.execute("SELECT name, failing FROM channels WHERE failing IS NOT NULL"):
            stats.setdefault(channel, {"pending": 0, "failed": 0, "sent": 0, "oldest_pending": None,
                                       "last_error": None})["failing"] = failing
        return stats

    def feed_stats(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for feed, status, count in self.db.execute(
            "SELECT feed, status, COUNT(*) FROM outbox WHERE status != 'sent' GROUP BY feed, status"
        ):
            out.setdefault(feed, {"pending": 0, "failed": 0})[status] = count
        return out

    def prune(self, *, keep: float, now: float | None = None) -> int:
        """Forget sent rows older than ``keep`` (at least the dedupe window). Pending rows are never pruned."""
        cutoff = (time.time() if now is None else now) - keep
        return self.db.execute("DELETE FROM outbox WHERE status = 'sent' AND created < ?", [cutoff]).rowcount
