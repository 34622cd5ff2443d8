"""How long one /metrics scrape takes at 10,000 feeds: ``uv run python -m bench.metrics_scrape``

Builds a database as a 10,000-feed relay has it after a cold start (10,000 feeds, 1% failing; 200,000 outbox
rows over 10 channels, 1,000 of them pending), starts the real endpoint (feedrelay.runtime.metrics.serve) and
scrapes it over loopback as Prometheus does (text format; then gzip), timing each scrape and the process's CPU
time for it. It also measures how late the event loop runs meanwhile: a coroutine that sleeps 10 ms in a loop
records its lateness during the scrapes (which run in the server's thread), and for as long again without any.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from feedrelay.delivery.outbox import Delivery, Outbox
from feedrelay.runtime.metrics import Metrics, serve
from feedrelay.store import Store


def build(path: Path, feeds: int, rows: int, channels: int) -> list[str]:
    store = Store(path)
    names = [f"Blog {i}: engineering notes" for i in range(feeds)]
    store.sync_feeds((n, f"https://blog{i}.example/feed.xml", "rss") for i, n in enumerate(names))
    now = time.time()
    outbox = Outbox(store)
    with store.transaction():
        for i, n in enumerate(names):
            store.record_success(n, {}, warning=None, listed=20, listing_gen=1, now=now - i)
    for i in range(0, feeds, 100):
        store.record_error(names[i], "HTTP 503 Service Unavailable", now=now)
    per = rows // feeds
    message = {"text": "x" * 200, "blocks": []}
    with store.transaction():
        outbox.enqueue([Delivery(f"channel-{(i + k) % channels}", n, f"k{i}-{k}", f"d{i}-{k}", message)
                        for i, n in enumerate(names) for k in range(per)], window=0, now=now - 3600)
        store.db.execute("UPDATE outbox SET status = 'sent' WHERE id > ?", [rows // 200])
    store.close()
    return names


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--feeds", type=int, default=10_000)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--scrapes", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "scrape.db"
        t = time.perf_counter()
        names = build(db, args.feeds, args.rows, 10)
        print(f"built {args.feeds} feeds, {args.rows} outbox rows in {time.perf_counter() - t:.1f} s")
        metrics = Metrics()
        metrics.watch(str(db), lambda: (names, [f"channel-{c}" for c in range(10)]))
        metrics.channels(f"channel-{c}" for c in range(10))
        endpoint = serve("127.0.0.1", 0, metrics)
        port = endpoint.server.server_address[1]
        lateness: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            while not done.is_set():
                start = time.perf_counter()
                await asyncio.sleep(0.01)
                lateness.append(time.perf_counter() - start - 0.01)

        tick = asyncio.create_task(ticker())
        t0 = time.perf_counter()
        results = {}
        async with httpx.AsyncClient(trust_env=False, timeout=60) as client:
            for encoding in ("identity", "gzip"):
                times, cpu, size, samples = [], [], 0, 0
                for _ in range(args.scrapes):
                    start, cpu_start = time.perf_counter(), time.process_time()
                    r = await client.get(f"http://127.0.0.1:{port}/metrics", headers={"Accept-Encoding": encoding})
                    times.append(time.perf_counter() - start)
                    cpu.append(time.process_time() - cpu_start)
                    size = len(r.content) if encoding == "identity" else int(r.headers.get("content-length", 0))
                    samples = sum(1 for line in r.text.splitlines() if line and not line.startswith("#"))
                results[encoding] = {"median_s": statistics.median(times), "max_s": max(times),
                                     "cpu_median_s": statistics.median(cpu), "bytes": size, "samples": samples}
        scraping = len(lateness)
        busy = time.perf_counter() - t0
        await asyncio.sleep(busy)  # the same time without scrapes, for comparison
        done.set()
        await tick
        endpoint.close()
        for enc, res in results.items():
            print(f"scrape ({enc}): median {res['median_s'] * 1000:.0f} ms wall, {res['cpu_median_s'] * 1000:.0f} ms "
                  f"CPU, max {res['max_s'] * 1000:.0f} ms; {res['bytes'] / 1e6:.2f} MB on the wire, "
                  f"{res['samples']} samples")
        for label, ticks in (("during scrapes", lateness[:scraping]), ("without scrapes", lateness[scraping:])):
            print(f"event loop {label}: a 10 ms sleep ran late by p50 {statistics.median(ticks) * 1000:.1f} ms, "
                  f"p99 {statistics.quantiles(ticks, n=100)[98] * 1000:.1f} ms, max {max(ticks) * 1000:.1f} ms "
                  f"({len(ticks)} ticks)")
        print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
