"""The daily EPSS load and the per-message lookup: ``uv run python -m bench --epss``

A realistic file is generated (``--epss-rows``, default 300,000 rows: CVE ids spread over 1999–2026 as the real file
has them, 5-decimal scores skewed low as EPSS's are, percentiles from the ranks), gzipped, and served on loopback.
Each measurement runs in a fresh process (so its peak memory is its own) that opens a real database and calls
feedrelay's own path, ``runtime.epss.refresh`` (conditional GET through the Fetcher, streaming parse, one
transaction, the rescoring of candidates and stories), and reports:

- the first load (empty table) and the daily load (yesterday's rows replaced): wall and CPU seconds, and the peak
  memory it added (VmHWM after minus VmRSS before);
- a lookup per message: ``EPSS(store).lookup([cve])`` for random ids (µs each), and the poll's batch
  ``EPSS(store).enrich(items)`` of 1,000 CVE items (µs per item).

Targets (issue #14): load ≤ 3 s and ≤ 60 MB added, lookup ≤ 50 µs per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TARGET_SECONDS, TARGET_MB, TARGET_US = 3.0, 60.0, 50.0


def generate(rows: int, day: int = 0, seed: int = 14) -> bytes:
    """The file of ``day``: the same CVEs every day (plus none new), each day's scores drawn afresh."""
    rng = random.Random(seed)
    years = list(range(1999, 2027))
    weights = [max(1, (y - 1998) ** 2) for y in years]  # most CVEs are recent
    ids: set[str] = set()
    while len(ids) < rows:
        year = rng.choices(years, weights)[0]
        ids.add(f"CVE-{year}-{rng.randint(1, 60000):04d}")
    rng = random.Random(seed * 1000 + day)
    scores = sorted(((cve, min(1.0, rng.lognormvariate(-5.5, 1.6))) for cve in sorted(ids)), key=lambda r: r[1])
    ranked = {cve: (score, (i + 1) / rows) for i, (cve, score) in enumerate(scores)}
    lines = ["#model_version:v2026.06.15,score_date:2026-09-29T12:00:22Z", "cve,epss,percentile"]
    lines += [f"{cve},{score:.5f},{pct:.5f}" for cve, (score, pct) in sorted(ranked.items())]
    return gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=6, mtime=0)


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    # (Linux ≥ 4.0: writing 5 to clear_refs resets VmHWM to the current RSS)
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def worker(url: str, db: str, mode: str) -> dict[str, float]:
    """One measurement in this (fresh) process."""
    from feedrelay.config import parse_config
    from feedrelay.delivery.outbox import Outbox
    from feedrelay.model import Item
    from feedrelay.runtime.epss import make_fetcher, refresh
    from feedrelay.store import Store
    from feedrelay.store.epss import EPSS

    config = parse_config(f'[epss]\nurl = "{url}"\n[channels.c]\nconsole = true\n', "feeds.toml", environ={})
    store = Store(db)
    outbox = Outbox(store)
    out: dict[str, float] = {}
    if mode == "load":
        async def load() -> None:
            fetcher = make_fetcher(config)
            _reset_peak()
            before = _rss_kb("VmRSS")
            wall, cpu = time.perf_counter(), time.process_time()
            report = await refresh(config, store, outbox, fetcher, force=True)
            out.update(wall=time.perf_counter() - wall, cpu=time.process_time() - cpu,
                       added_mb=(_rss_kb("VmHWM") - before) / 1024, rows=float(report.loaded if report else 0))
            await fetcher.aclose()

        asyncio.run(load())
    else:
        epss = EPSS(store)
        ids = [r[0] for r in store.db.execute("SELECT cve FROM epss")]
        rng = random.Random(1)
        sample = [rng.choice(ids) for _ in range(20_000)]
        start = time.perf_counter()
        for cve in sample:
            epss.lookup([cve])
        out["lookup_us"] = (time.perf_counter() - start) / len(sample) * 1e6
        items = [Item(key=c, title=c, link="", kind="cve", extra={"cve": c}) for c in sample[:1000]]
        start = time.perf_counter()
        for _ in range(20):
            epss.enrich(items)
        out["enrich_us"] = (time.perf_counter() - start) / (20 * len(items)) * 1e6
    store.close()
    return out


class _Handler(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _spawn(url: str, db: str, mode: str) -> dict[str, float]:
    p = subprocess.run([sys.executable, "-m", "bench.epss_load", url, db, mode], capture_output=True, text=True,
                       timeout=300, env={k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")})
    if p.returncode != 0:
        raise SystemExit(p.stderr[-3000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def run(rows: int = 300_000, out: str | None = None) -> int:
    body = generate(rows)
    _Handler.body = body
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/epss_scores-current.csv.gz"
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "epss.db")
        first = _spawn(url, db, "load")
        _Handler.body = generate(rows, day=1)
        daily = _spawn(url, db, "load")
        looks = _spawn(url, db, "lookup")
    server.shutdown()
    ok = all(r["wall"] <= TARGET_SECONDS and r["added_mb"] <= TARGET_MB for r in (first, daily)) and \
        looks["lookup_us"] <= TARGET_US
    lines = [f"EPSS load: {rows:,} rows, {len(body) / 1e6:.1f} MB gzipped, on {os.cpu_count()} core(s)", "",
             "| load | rows | wall s | CPU s | peak added MB |", "|---|---:|---:|---:|---:|"]
    for name, r in (("first (empty table)", first), ("daily (rows replaced)", daily)):
        lines.append(f"| {name} | {int(r['rows']):,} | {r['wall']:.2f} | {r['cpu']:.2f} | {r['added_mb']:.1f} |")
    lines += ["", f"lookup per message: {looks['lookup_us']:.1f} µs (EPSS.lookup of one id); "
                  f"poll enrichment: {looks['enrich_us']:.1f} µs per item (batches of 1,000)", "",
              f"targets: load ≤ {TARGET_SECONDS:g} s and ≤ {TARGET_MB:g} MB added, lookup ≤ {TARGET_US:g} µs: "
              + ("PASS" if ok else "FAIL")]
    text = "\n".join(lines)
    print(text)
    if out:
        Path(out).write_text(text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    print(json.dumps(worker(sys.argv[1], sys.argv[2], sys.argv[3])))
