"""EPSS scores in SQLite: the last good daily file, what is known of the file (score date, validators, the last
check and error), and the candidates (CVEs a route held back for their EPSS alone).

The lookup API, for every stage that shows or judges EPSS::

    scores = EPSS(store).lookup(["CVE-2021-44228", "CVE-2024-3094"])   # {cve: Score(epss, percentile)}
    EPSS(store).info().score_date                                       # "2026-09-29T12:00:22Z", "" before any

A batch of 400 ids is one query on the table's primary key (~2 µs an id).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from feedrelay.decide.epss import Candidate, with_score
from feedrelay.model import SECURITY_KINDS, Item, Score
from feedrelay.store import Store, in_chunks
from feedrelay.store.stories import item_from_json, item_json


@dataclass(frozen=True)
class EpssInfo:
    """What `status` shows of EPSS, and what the next check needs."""

    url: str = ""  # the URL the scores (and validators) came from
    etag: str = ""
    last_modified: str = ""
    score_date: str = ""  # the loaded file's, as it says it ("" before the first load)
    model_version: str = ""
    rows: int = 0
    loaded: float | None = None  # when the scores were loaded
    checked: float | None = None  # the last successful check (200 or 304)
    attempted: float | None = None  # the last check, successful or not
    error: str = ""  # the last check's error ("" when it succeeded)
    error_since: float | None = None
    errors: int = 0  # checks failed in a row
    not_before: float | None = None  # the server asked for a pause (Retry-After)
    body_hash: str = ""


class EPSS:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    # --- reading --------------------------------------------------------------------------------

    def lookup(self, cve_ids: Iterable[str]) -> dict[str, Score]:
        """Each known CVE's score (unknown ids are left out)."""
        out: dict[str, Score] = {}
        for chunk, marks in in_chunks(sorted(set(cve_ids)), 400):
            rows = self.db.execute(f"SELECT cve, epss, percentile FROM epss WHERE cve IN ({marks})", chunk)
            out.update((cve, Score(e, p)) for cve, e, p in rows)
        return out

    def info(self) -> EpssInfo:
        if not self.db["epss_meta"].exists():
            return EpssInfo()  # (a database opened read-only before this version created the table)
        raw = dict(self.db.execute("SELECT key, value FROM epss_meta").fetchall())
        values: dict[str, Any] = {}
        for f in fields(EpssInfo):
            if f.name in raw:
                values[f.name] = json.loads(raw[f.name])
        return EpssInfo(**values)

    def enrich(self, items: list[Item]) -> list[Item]:
        """Security items with their CVE's current EPSS, in one batch lookup (before the filters run)."""
        ids = [str(i.extra.get("cve") or i.key) for i in items if i.kind in SECURITY_KINDS]
        if not ids:
            return items
        scores = self.lookup(ids)
        date = self.info().score_date if scores else ""
        return [with_score(i, scores.get(str(i.extra.get("cve") or i.key)), date) if i.kind in SECURITY_KINDS
                else i for i in items]

    # --- writing (inside the caller's transaction) ------------------------------------------------

    def note(self, **values: Any) -> None:
        self.db.conn.executemany("INSERT OR REPLACE INTO epss_meta (key, value) VALUES (?, ?)",
                                 [(k, json.dumps(v)) for k, v in values.items()])

    def replace_scores(self, rows: Iterable[tuple[str, float, float]]) -> None:
        """Yesterday's scores out, today's in: call inside a transaction, so that a file that fails half way
        (or a crash) leaves yesterday's."""
        self.db.execute("DELETE FROM epss")
        self.db.conn.executemany("INSERT OR REPLACE INTO epss (cve, epss, percentile) VALUES (?, ?, ?)", rows)

    # --- candidates -------------------------------------------------------------------------------

    def candidates(self, floor: Score) -> list[Candidate]:
        """The candidates whose CVE now scores at least ``floor`` (the lowest bar of any route: only they can
        pass one), without reading the others' items."""
        rows = self.db.execute(
            "SELECT c.channel, c.story, c.feed, c.since, c.item FROM epss_candidates c JOIN epss e ON e.cve = c.story "
            "WHERE e.epss >= ? AND e.percentile >= ?", [floor.epss, floor.percentile])
        return [Candidate(ch, story, feed, since, item_from_json(item)) for ch, story, feed, since, item in rows]

    def settle(self, *, older_than: float) -> int:
        """Forget the candidates that expired, and those since posted in their channel (by any feed)."""
        n = self.db.execute("DELETE FROM epss_candidates WHERE since < ?", [older_than]).rowcount
        return n + self.db.execute("DELETE FROM epss_candidates WHERE EXISTS (SELECT 1 FROM stories s WHERE "
                                   "s.channel = epss_candidates.channel AND s.story = epss_candidates.story)").rowcount

    def remember(self, feed: str, items: Iterable[tuple[str, str, Item]], now: float | None = None) -> None:
        """(channel, story, item) a route of ``feed`` held back for its EPSS alone; a candidate seen again keeps
        its start (its expiry runs from the first time) and takes the newer item."""
        now = time.time() if now is None else now
        self.db.conn.executemany(
            "INSERT INTO epss_candidates (channel, story, feed, since, item) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (channel, story, feed) DO UPDATE SET item = excluded.item",
            [(ch, story, feed, now, item_json(item)) for ch, story, item in items])

    def forget(self, keys: Iterable[tuple[str, str, str]]) -> None:
        self.db.conn.executemany("DELETE FROM epss_candidates WHERE channel = ? AND story = ? AND feed = ?",
                                 list(keys))

    def stories_with_scores(self, channels: Iterable[str], floor: Score) -> list[tuple[str, str, str | None, float]]:
        """(channel, story, state JSON, first posted) of the stories in these channels whose CVE now scores at
        least ``floor`` (only they can have crossed a bar)."""
        channels = sorted(set(channels))
        if not channels:
            return []
        marks = ",".join("?" * len(channels))
        return self.db.execute(f"SELECT s.channel, s.story, s.state, s.first_posted FROM stories s JOIN epss e "
                               f"ON e.cve = s.story WHERE s.channel IN ({marks}) AND e.epss >= ? AND "
                               f"e.percentile >= ?", [*channels, floor.epss, floor.percentile]).fetchall()

    def counts(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM epss_candidates").fetchone()[0])
