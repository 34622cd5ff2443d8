"""``uv run python -m bench --daemon``: `feedrelay run`'s own scheduling at 1,000 and 10,000 feeds.

The other scenarios time ``Relay.poll_all()``, what `once` does. This one runs the daemon (`Daemon`: an
APScheduler timer per feed, staggered first polls, jitter, every due feed submitted to the dispatcher) on a
primed database for a few poll intervals, with and without one slow host, and measures:

* **lateness**: for each time a feed's timer fired (APScheduler's scheduled run time, jitter included), how
  long until the farm received that feed's request. A timer that fires while the feed is still queued or in
  flight is served by that poll (counted as coalesced), and lateness runs from the earliest unserved firing;
  a firing not served when the daemon stops counts with the time it waited until then.
* **polls/s** achieved (feed requests the farm received ÷ the run's length), **CPU** of the relay's process
  tree (the parse pool included) and its **peak PSS**;
* the end-to-end path: 1% of the other hosts' feeds gain an item after each interval but the last, and each
  must reach the fake Slack exactly once.

The slow host is the farm's host 0 (every 64th feed): it answers after ``--slow-delay`` seconds, so with
``per_host = 4`` its feeds cannot all be polled each interval. That is what `per_host` is for; the check is
that no other host's feeds are later because of it.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from feedrelay.runtime.daemon import FIRST_POLL_SPREAD

from .farm import Farm
from .run import (
    CHANNELS,
    TOKEN,
    WorkerProc,
    build_config,
    channel_of,
    load_average,
    percentile,
    slack_target,
    tree_cpu_seconds,
)
from .slack import FakeSlack

LATENESS_TARGET = 5.0  # seconds, p99, for the feeds of every host but the slow one
# Items each feed lists at the start. The daemon's steady state is 304s, whatever a feed's size; a short listing
# keeps the (untimed) prime of 10,000 feeds to ~1/4 of the cold scenario's 200,000 parsed items.
PRIME_ITEMS = 5
SLOW_HOST = 0


@dataclass
class Lateness:
    values: list[float] = field(default_factory=list)  # one per served (or unserved) firing
    worst: list[tuple[float, float, int]] = field(default_factory=list)  # (lateness, firing time, feed)
    coalesced: int = 0  # firings that found the feed still queued or in flight
    unserved: int = 0  # firings not served when the daemon stopped

    def p(self, q: float) -> float:
        return percentile(self.values, q)


@dataclass
class DaemonResult:
    n: int
    slow: bool
    interval: float
    t0: float = 0.0  # time.time() the daemon started
    seconds: float = 0.0  # the recorded window
    polls: int = 0  # feed requests the farm received in the window
    cpu: float = 0.0  # the relay's process tree, over the whole daemon run (start-up and stop included)
    run_seconds: float = 0.0
    pss_mb: float = 0.0
    rss_mb: float = 0.0
    load: float = 0.0
    stall_p99: float = 0.0  # the event loop's lateness (a bystander task's 50 ms sleeps), p99 and max
    stall_max: float = 0.0
    others: Lateness = field(default_factory=Lateness)
    started: Lateness = field(default_factory=Lateness)  # the other hosts' feeds: timer → the dispatcher starts it
    slow_host: Lateness = field(default_factory=Lateness)
    slow_polls: int = 0
    published: int = 0
    delivered: int = 0
    delivery: list[float] = field(default_factory=list)  # item published → Slack, seconds
    results: dict[str, float] = field(default_factory=dict)  # polls by result, from the relay's counters
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def lateness(fires: list[float], requests: list[float], until: float, into: Lateness, feed: int = -1) -> None:
    """Match one feed's timer firings to the requests that served them (both sorted); a firing still unserved
    at ``until`` counts as late by the time it waited."""
    pending: list[float] = []
    i = 0
    for r in requests:
        while i < len(fires) and fires[i] <= r:
            pending.append(fires[i])
            i += 1
        if pending:
            into.values.append(r - pending[0])
            into.worst.append((r - pending[0], pending[0], feed))
            into.coalesced += len(pending) - 1
            pending = []
    pending += fires[i:]
    if pending:
        into.unserved += len(pending)
        into.values.append(until - pending[0])
        into.worst.append((until - pending[0], pending[0], feed))
    into.worst = sorted(into.worst, reverse=True)[:5]


async def run_variant(n: int, slow: bool, *, primed: Path, farm: Farm, slack: FakeSlack, work: Path,
                      interval: float, cycles: int, slow_delay: float, per_host: int) -> DaemonResult:
    res = DaemonResult(n, slow, interval)
    tag = f"daemon-{n}-{'slow' if slow else 'even'}"
    db = work / f"{tag}.db"
    shutil.copyfile(primed, db)
    text = build_config(farm, per_host).replace('interval = "15m"', f'interval = "{interval:g}s"')
    cfg = work / f"{tag}.toml"
    cfg.write_text(text)
    farm.host_delay = {SLOW_HOST: slow_delay} if slow else {}
    slack.clear()
    w = await WorkerProc.spawn(work, tag)
    try:
        await w.call("open", config=text, db=str(db), env={"SLACK_BOT_TOKEN": TOKEN, "SLACK_API_URL": slack.api_url},
                     path=str(cfg))
        farm.requests_at = []
        # Long enough for every item published at the last publication to be polled (up to the first polls'
        # stagger, then interval × (1 + jitter)) and posted (each channel posts one a second).
        window = cycles * interval + min(FIRST_POLL_SPREAD, interval) + 0.1 * interval + (n // 100) / CHANNELS + 3
        res.load = load_average()
        cpu0 = tree_cpu_seconds(w.proc.pid)
        t0 = time.monotonic()
        call = asyncio.create_task(w.call("daemon", seconds=window, tail=min(interval, 5.0)))
        published = await _publish(farm, n, interval, cycles, call)
        out = await call
        res.run_seconds = time.monotonic() - t0
        res.cpu = tree_cpu_seconds(w.proc.pid) - cpu0
        await w.call("close")
    finally:
        await w.finish()
        farm.host_delay = {}
    requests, farm.requests_at = farm.requests_at or [], None
    res.pss_mb, res.rss_mb = w.tree_pss_mb, w.tree_peak_mb
    res.t0, res.seconds = out["t0"], out["t_end"] - out["t0"]
    res.results = out["polls"]
    res.stall_p99, res.stall_max = out["stall_p99"], out["stall_max"]
    if out["fatal"]:
        res.problems.append(f"the daemon stopped: {out['fatal']}")
    by_feed: defaultdict[int, list[float]] = defaultdict(list)  # until the stop: a firing just before t_end counts
    for feed, at in requests:
        by_feed[feed].append(at)
    res.polls = sum(1 for _, at in requests if at <= out["t_end"])
    fires = {int(k): v for k, v in out["fires"].items()}
    starts = {int(k): v for k, v in out.get("starts", {}).items()}
    for feed in range(n):
        slow_feed = slow and farm.host_of(feed) == SLOW_HOST
        into = res.slow_host if slow_feed else res.others
        if slow_feed:
            res.slow_polls += sum(1 for at in by_feed.get(feed, []) if at <= out["t_end"])
        lateness(sorted(fires.get(feed, [])), sorted(by_feed.get(feed, [])), out["t_stop"], into, feed)
        if not slow_feed:
            lateness(sorted(fires.get(feed, [])), sorted(starts.get(feed, [])), out["t_stop"], res.started, feed)
        if not fires.get(feed):
            res.problems.append(f"feed-{feed}: its timer never fired")
    if res.others.unserved:
        res.problems.append(f"{res.others.unserved} firing(s) of the other hosts' feeds never served")
    if res.results.get("failed"):
        res.problems.append(f"{res.results['failed']:.0f} poll(s) failed")
    res.published = len(published)
    got = Counter((p.channel, p.link) for p in slack.posts)
    want = Counter((slack_target(channel_of(i)), link) for i, link in published)
    res.delivered = sum((got & want).values())
    if got != want:
        missing, extra = want - got, got - want
        res.problems.append(f"Slack record differs: {sum(missing.values())} missing, {sum(extra.values())} extra "
                            f"(e.g. {list(missing or extra)[:2]})")
    arrived = {p.link: p.time for p in slack.posts}
    res.delivery = [arrived[link] - farm.appeared[link] for _, link in published if link in arrived]
    return res


async def _publish(farm: Farm, n: int, interval: float, cycles: int, call: asyncio.Task) -> list[tuple[int, str]]:
    """Each interval, 1% of the feeds (none of the slow host's) gain an item, spread over the channels."""
    rng = random.Random(n)
    candidates = [i for i in range(n) if farm.host_of(i) != SLOW_HOST]
    published: list[tuple[int, str]] = []
    for _ in range(cycles - 1):
        done, _ = await asyncio.wait({call}, timeout=interval)
        if done:
            break
        by_channel = defaultdict(list)
        for i in rng.sample(candidates, len(candidates)):
            by_channel[channel_of(i)].append(i)
        k = max(1, n // 100)
        chosen = [by_channel[f"c{j % CHANNELS}"][j // CHANNELS] for j in range(k)]
        published += farm.add_items(sorted(chosen), 1)
    return published


async def prime(farm: Farm, work: Path, slack: FakeSlack, per_host: int) -> Path:
    """Every feed's first poll (remembered, nothing posted), as `once` would: the daemon then starts on a
    database in its usual state, where unchanged feeds answer 304."""
    db = work / f"primed-{farm.n}.db"
    text = build_config(farm, per_host)
    (work / "prime.toml").write_text(text)
    w = await WorkerProc.spawn(work, f"prime-{farm.n}")
    try:
        await w.call("open", config=text, db=str(db), env={"SLACK_BOT_TOKEN": TOKEN, "SLACK_API_URL": slack.api_url},
                     path=str(work / "prime.toml"))
        first = 0
        for _ in range(3):  # (a machine busy enough to time requests out: the failed feeds get another go)
            out = await w.call("poll")
            first += out["first_poll"]
            if not out["errors"]:
                break
            print(f"[daemon]   prime: {out['errors']} error(s), e.g. {out['error_samples'][:2]}; again",
                  file=sys.stderr, flush=True)
        if out["errors"] or first != farm.n:
            raise RuntimeError(f"prime: {first}/{farm.n} first polls, {out['errors']} error(s), e.g. "
                               f"{out['error_samples'][:2]}")
        await w.call("close")
    finally:
        await w.finish()
    return db


def report(results: list[DaemonResult], *, slow_delay: float, per_host: int) -> tuple[str, bool]:
    lines = ["## Daemon: `feedrelay run`'s scheduling (APScheduler timers → the dispatcher)", "",
             "| feeds | interval | slow host | polls/s | lateness p50 / p99 / max (other hosts) | of which timer → "
             "poll started, p50 / p99 | coalesced | "
             "slow host: polls, lateness p50 / p99 | item → Slack p50 / p99 | event loop late p99 / max | CPU (tree) | "
             "PSS (RSS) | load | |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        o, s = r.others, r.slow_host
        slow = (f"{r.slow_polls}, {s.p(0.5):.1f}s / {s.p(0.99):.1f}s ({s.coalesced} coalesced, {s.unserved} "
                "waiting at the end)" if r.slow else "—")
        lines.append(
            f"| {r.n:,} | {r.interval:g}s | {f'{slow_delay:g}s' if r.slow else 'none'} | {r.polls / r.seconds:,.1f} | "
            f"{o.p(0.5):.3f}s / {o.p(0.99):.3f}s / {max(o.values, default=0):.2f}s | "
            f"{r.started.p(0.5):.3f}s / {r.started.p(0.99):.3f}s | {o.coalesced} | {slow} | "
            f"{percentile(r.delivery, 0.5):.1f}s / {percentile(r.delivery, 0.99):.1f}s ({r.delivered}/{r.published}) | "
            f"{r.stall_p99:.3f}s / {r.stall_max:.2f}s | "
            f"{r.cpu:.1f}s in {r.run_seconds:.0f}s ({100 * r.cpu / r.run_seconds:.0f}% of a core) | "
            f"{r.pss_mb:.0f} ({r.rss_mb:.0f}) MB | {r.load:.1f} | "
            f"{'OK' if r.ok else 'FAIL: ' + '; '.join(r.problems)} |")
    lines.append("")
    ok = all(r.ok for r in results)
    for r in results:
        passed = r.others.p(0.99) <= LATENESS_TARGET
        lines.append(f"- {'PASS' if passed else 'MISS'} {r.n:,} feeds every {r.interval:g}s"
                     f"{' with a slow host' if r.slow else ''}: p99 lateness {r.others.p(0.99):.3f}s "
                     f"(target ≤ {LATENESS_TARGET:g}s)")
    for r in (r for r in results if r.slow):
        even = next((x for x in results if x.n == r.n and not x.slow), None)
        if even:
            worse = r.others.p(0.99) - even.others.p(0.99)
            passed = worse <= 1.0
            lines.append(f"- {'PASS' if passed else 'MISS'} {r.n:,} feeds: the slow host ({slow_delay:g}s per answer, "
                         f"per_host = {per_host}) moves the other hosts' p99 lateness by {worse:+.3f}s "
                         f"({even.others.p(0.99):.3f}s → {r.others.p(0.99):.3f}s)")
    return "\n".join(lines) + "\n", ok


async def amain(feeds: list[int], *, interval: float, cycles: int, slow_delay: float, per_host: int = 4,
                hosts: int = 64, delay: float = 0.05) -> tuple[list[DaemonResult], float]:
    slack = await FakeSlack(TOKEN).start()
    results: list[DaemonResult] = []
    t0 = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="feedrelay-daemon-") as tmp:
            work = Path(tmp)
            for n in feeds:
                farm = await Farm(n, hosts=min(hosts, n), delay=delay).start()
                try:
                    farm.reset(PRIME_ITEMS, validators=True)
                    print(f"[daemon] N={n:,}: priming …", file=sys.stderr, flush=True)
                    primed = await prime(farm, work, slack, per_host)
                    as_primed = farm.snapshot()
                    for slow in (False, True):
                        farm.restore(as_primed)  # (the items the previous run published are not news to this one)
                        print(f"[daemon] N={n:,} interval={interval:g}s slow host={slow} …", file=sys.stderr,
                              flush=True)
                        r = await run_variant(n, slow, primed=primed, farm=farm, slack=slack, work=work,
                                              interval=interval, cycles=cycles, slow_delay=slow_delay,
                                              per_host=per_host)
                        results.append(r)
                        worst = ", ".join(f"feed-{f} {late:.2f}s late at +{at - r.t0:.1f}s" for late, at, f in
                                          r.others.worst[:3])
                        print(f"[daemon]   latest: {worst}", file=sys.stderr, flush=True)
                        print(f"[daemon]   {r.polls / r.seconds:.1f} polls/s, p50 {r.others.p(0.5):.3f}s p99 "
                              f"{r.others.p(0.99):.3f}s, loop late max {r.stall_max:.2f}s, cpu {r.cpu:.1f}s, "
                              f"load {r.load:.1f}, PSS {r.pss_mb:.0f} MB  "
                              f"{'OK' if r.ok else 'FAIL: ' + '; '.join(r.problems)}", file=sys.stderr, flush=True)
                finally:
                    await farm.stop()
    finally:
        await slack.stop()
    return results, time.monotonic() - t0


def run(feeds: list[int], *, interval: float, cycles: int, slow_delay: float, per_host: int = 4,
        out: str | None = None) -> int:
    results, elapsed = asyncio.run(amain(feeds, interval=interval, cycles=cycles, slow_delay=slow_delay,
                                         per_host=per_host))
    text, ok = report(results, slow_delay=slow_delay, per_host=per_host)
    text += (f"\nRun: {len(results)} daemon run(s) in {elapsed:.0f}s; {cycles} intervals each, farm delay 50 ms, "
             f"64 hosts, per_host = {per_host}.\n")
    print(text)
    if out:
        Path(out).write_text(text)
    return 0 if ok else 1
