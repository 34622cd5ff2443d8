"""Does feedrelay's Store stay flat as it remembers more? ``uv run python -m bench --store``

The store grows to each size (10k, 100k, 1M remembered items by default) as a real deployment does:
100 items per feed (what pruning keeps: max(2 × listing, 100)), so 1M items = 10,000 feeds. At each size
it times the two calls every poll makes, on random feeds:

- ``remember``: 20 new items in one transaction (commit included), as pipeline.poll_feed does;
- ``known_keys``: which of a feed's 20 listed keys are known (19 known, 1 new), as every parsed poll does.

Each is timed over many operations and reported per operation (median of 5 rounds); the timed inserts are
deleted again (untimed) so the store stays at its nominal size.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path

from feedrelay.model import Item
from feedrelay.store import Store

PER_FEED = 100
BATCH = 20


def _key(feed: int, seq: int) -> str:
    return f"https://blog{feed}.bench.example/posts/{seq}-a-reasonably-long-slug-like-real-ones"


def _items(feed: int, start: int, count: int) -> list[Item]:
    return [Item(key=_key(feed, s), title=f"Post {s} of blog {feed}: a title of typical length",
                 link=_key(feed, s)) for s in range(start, start + count)]


def _db_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists()) / 1e6


def run(sizes: list[int], out: str | None = None, rounds: int = 5, ops: int = 400) -> int:
    rng = random.Random(1)
    rows: list[tuple[int, int, float, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="feedrelay-store-") as tmp:
        path = Path(tmp) / "store.db"
        store = Store(path)
        next_seq: dict[int, int] = {}
        feeds = 0
        for size in sorted(sizes):
            target_feeds = max(1, size // PER_FEED)
            t0 = time.perf_counter()
            while feeds < target_feeds:  # grow (untimed) in big transactions
                with store.transaction():
                    for f in range(feeds, min(target_feeds, feeds + 200)):
                        store.remember(f"feed-{f}", _items(f, 0, PER_FEED), now=time.time())
                        next_seq[f] = PER_FEED
                feeds = min(target_feeds, feeds + 200)
            store.sync_feeds((f"feed-{f}", "", "rss") for f in range(feeds))
            grow = time.perf_counter() - t0
            remember_us, lookup_us, each = [], [], []
            for _ in range(rounds):
                picks = [rng.randrange(feeds) for _ in range(ops)]
                batches = []
                for f in picks:
                    batches.append((f, _items(f, next_seq[f], BATCH)))
                    next_seq[f] += BATCH
                for f, items in batches:
                    t = time.perf_counter()
                    with store.transaction():
                        store.remember(f"feed-{f}", items)
                    each.append((time.perf_counter() - t) * 1e6)
                remember_us.append(sum(each[-ops:]) / ops)
                with store.transaction():  # untimed: keep the store at its nominal size
                    store.db.conn.executemany("DELETE FROM items WHERE feed = ? AND key = ?",
                                              [(f"feed-{f}", i.key) for f, items in batches for i in items])
                queries = []
                for f in (rng.randrange(feeds) for _ in range(ops)):
                    seqs = rng.sample(range(PER_FEED), BATCH - 1)
                    queries.append((f"feed-{f}", [_key(f, s) for s in seqs] + [_key(f, 10**9)]))
                t = time.perf_counter()
                for name, keys in queries:
                    store.known_keys(name, keys)
                lookup_us.append((time.perf_counter() - t) / ops * 1e6)
            total = store.db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
            store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            each.sort()
            p50, p99 = each[len(each) // 2], each[int(len(each) * 0.99)]
            rows.append((total, feeds, statistics.median(remember_us), p50, p99, statistics.median(lookup_us),
                         _db_mb(path)))
            print(f"[store] {total:>9,} items ({feeds:,} feeds, grown in {grow:.1f}s): remember "
                  f"{rows[-1][2]:.0f} µs/op (p50 {p50:.0f}, p99 {p99:.0f}), known_keys {rows[-1][5]:.0f} µs/op",
                  flush=True)
        store.close()

    lines = [
        "## Store scaling (remember + known_keys, 20 items per call, random feeds)",
        "",
        "| remembered items | feeds | remember: mean (20 items, 1 transaction) | p50 | p99 | known_keys (20 keys) "
        "| DB size |",
        "|---|---|---|---|---|---|---|",
    ]
    for total, feeds, rem, p50, p99, look, mb in rows:
        lines.append(f"| {total:,} | {feeds:,} | {rem:.0f} µs/op ({rem / BATCH:.1f} µs/item) | {p50:.0f} µs | "
                     f"{p99:,.0f} µs | {look:.0f} µs/op | {mb:.0f} MB |")
    a, b = rows[0], rows[-1]
    flat_rem, flat_look = b[2] / a[2], b[5] / a[5]
    ok = flat_rem <= 1.5 and flat_look <= 1.5
    lines += ["", "The mean includes the WAL checkpoints (with fdatasync) that SQLite runs inside some commits: "
              "they are the p99 column.",
              "", f"{'PASS' if ok else 'MISS'} store flat from {a[0]:,} to {b[0]:,} items (≤ 1.5× per op): remember "
              f"×{flat_rem:.2f} (median commit ×{b[3] / a[3]:.2f}), known_keys ×{flat_look:.2f}"]
    text = "\n".join(lines)
    print("\n" + text)
    if out:
        Path(out).write_text(text + "\n")
    return 0
