"""The facts of CVEs that RSS entries may mention: filled whenever a security source's items pass through a poll
(NVD records, KEV entries) and by NVD lookups of ids nothing else told of (negative answers too, with expiry)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass

from feedrelay.decide.mentions import combine, kev_facts, record_facts
from feedrelay.model import CveFacts, Item
from feedrelay.store import Store, in_chunks


@dataclass(frozen=True)
class CacheRules:
    refresh: float = 86400.0  # a looked-up record is asked for again after this (scores change as NVD analyses)
    retry_unknown: float = 6 * 3600.0  # an id NVD did not know is asked for again after this (it may be published)


class CveFactsTable:
    def __init__(self, store: Store) -> None:
        self.db = store.db

    def remember(self, items: Iterable[Item], now: float | None = None) -> int:
        """Inside the poll's transaction: the facts of a security source's items. Returns how many were kept."""
        now = time.time() if now is None else now
        records, listings = [], []
        for item in items:
            if (facts := record_facts(item)) is not None:
                records.append((facts.cve, json.dumps(facts.as_extra()), now))
            elif (kev := kev_facts(item)) is not None:
                listings.append((str(item.extra["cve"]), json.dumps(kev), now))
        # A feed keeps what it gives current: looked_up NULL, so no lookup asks NVD for it again.
        self.db.conn.executemany(
            "INSERT INTO cve_facts (cve, record, updated) VALUES (?, ?, ?) ON CONFLICT (cve) DO UPDATE SET "
            "record = excluded.record, looked_up = NULL, found = NULL, updated = excluded.updated "
            "WHERE record IS NOT excluded.record OR looked_up IS NOT NULL", records)
        self.db.conn.executemany(
            "INSERT INTO cve_facts (cve, kev, updated) VALUES (?, ?, ?) ON CONFLICT (cve) DO UPDATE SET "
            "kev = excluded.kev, updated = excluded.updated WHERE kev IS NOT excluded.kev", listings)
        return len(records) + len(listings)

    def known(self, ids: Iterable[str], rules: CacheRules, now: float | None = None
              ) -> tuple[dict[str, CveFacts], set[str]]:
        """The facts known of these ids, and the ids to look up (nothing known, only KEV's part, or a lookup's
        answer that has expired)."""
        now = time.time() if now is None else now
        ids = sorted(set(ids))
        known: dict[str, CveFacts] = {}
        stale: set[str] = set(ids)
        for chunk, marks in in_chunks(ids, 400):
            for cve, record, kev, looked_up, found in self.db.execute(
                    f"SELECT cve, record, kev, looked_up, found FROM cve_facts WHERE cve IN ({marks})", chunk):
                if record is not None or kev is not None:
                    known[cve] = combine(cve, json.loads(record) if record else None, json.loads(kev) if kev else None)
                if looked_up is None:
                    fresh = record is not None  # kept current by a feed; KEV's part alone has no score
                else:
                    fresh = now < looked_up + (rules.refresh if found else rules.retry_unknown)
                if fresh:
                    stale.discard(cve)
        return known, stale

    def looked_up(self, results: dict[str, CveFacts | None], now: float | None = None) -> None:
        """NVD's answers by id: the record's facts, or None for an id NVD does not know (cached as such)."""
        now = time.time() if now is None else now
        self.db.conn.executemany(
            "INSERT INTO cve_facts (cve, record, looked_up, found, updated) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (cve) DO UPDATE SET record = coalesce(excluded.record, record), "
            "looked_up = excluded.looked_up, found = excluded.found, updated = excluded.updated",
            [(cve, json.dumps(f.as_extra()) if f else None, now, 1 if f else 0, now) for cve, f in results.items()])

    def prune(self, *, retention: float, now: float | None = None) -> int:
        cutoff = (time.time() if now is None else now) - retention
        return int(self.db.execute("DELETE FROM cve_facts WHERE updated < ?", [cutoff]).rowcount)
