"""``uv run python -m bench --soak``: a relay that runs for months must not grow.

One relay process runs feedrelay's real path (``Relay.poll_all`` and the running deliverer) against a farm
of N feeds for R rounds. Before each round 1% of the feeds gain an item, spread over the channels; the round
ends when the fake Slack has every post. After each round the harness reads, from /proc, the process
tree's RSS and PSS (parse workers included), the relay's open file descriptors and threads, and the
database's size. At the end it checks that every published item reached Slack exactly once, and reports
the growth between the end of warm-up (a fifth of the rounds) and the last round.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .farm import Farm
from .run import CHANNELS, TOKEN, WorkerProc, build_config, channel_of, db_size_mb, slack_target, tree_memory_mb
from .slack import FakeSlack

# Growth allowed between warm-up and the end, whatever the number of rounds: a leak of even a few KB per
# round shows over a few hundred rounds; allocator noise and SQLite's page cache settle within the warm-up.
MAX_PSS_GROWTH_MB = 5.0
MAX_FD_GROWTH = 2
MAX_THREAD_GROWTH = 2


@dataclass
class Sample:
    round: int
    poll_s: float
    rss_mb: float  # the process tree, summed
    pss_mb: float  # the process tree, shared pages counted once
    relay_rss_mb: float
    fds: int
    threads: int
    db_mb: float


def _relay_stats(pid: int) -> tuple[float, int, int]:
    rss_kb = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd")), threads


def _pick(n: int, k: int, rng: random.Random) -> list[int]:
    """``k`` distinct feeds, spread evenly over the channels (Slack pacing is not what is measured)."""
    per_channel = [rng.sample(range(c, n, CHANNELS), len(range(c, n, CHANNELS))) for c in range(CHANNELS)]
    return sorted(per_channel[j % CHANNELS][j // CHANNELS] for j in range(min(k, n)))


async def soak(n: int, rounds: int, *, per_host: int = 4, hosts: int = 64) -> tuple[list[Sample], list[str]]:
    """Run the soak; (samples, problems)."""
    slack = FakeSlack()
    await slack.start()
    farm = await Farm(n, hosts=min(hosts, n), delay=0.0).start()
    problems: list[str] = []
    samples: list[Sample] = []
    published: list[tuple[int, str]] = []
    rng = random.Random(n * 7919 + rounds)
    with tempfile.TemporaryDirectory(prefix="feedrelay-soak-") as tmp:
        work = Path(tmp)
        db = work / "soak.db"
        w = await WorkerProc.spawn(work, "soak")
        try:
            farm.reset(20, validators=True)
            text = build_config(farm, per_host)
            (work / "soak.toml").write_text(text)
            await w.call("open", config=text, db=str(db), env={"SLACK_BOT_TOKEN": TOKEN,
                                                               "SLACK_API_URL": slack.api_url},
                         path=str(work / "soak.toml"))
            first = await w.call("poll")  # every feed's silent first poll
            if first["errors"]:
                problems.append(f"first poll: {first['errors']} feed error(s), e.g. {first['error_samples'][:2]}")
            await w.call("deliver")
            k = max(1, n // 100)
            for r in range(1, rounds + 1):
                published += farm.add_items(_pick(n, k, rng), 1)
                out = await w.call("poll")
                if out["errors"]:
                    problems.append(f"round {r}: {out['errors']} feed error(s), e.g. {out['error_samples'][:2]}")
                if not await slack.wait_for(len(published), timeout=k * 1.5 + 15):
                    problems.append(f"round {r}: only {len(slack.posts)}/{len(published)} posts arrived")
                    break
                rss, pss = tree_memory_mb(w.proc.pid)
                relay_rss, fds, threads = _relay_stats(w.proc.pid)
                samples.append(Sample(r, out["seconds"], rss, pss, relay_rss, fds, threads, db_size_mb(db)))
                if r % max(1, rounds // 10) == 0:
                    s = samples[-1]
                    print(f"[soak] round {r}/{rounds}: poll {s.poll_s:.2f}s, PSS {s.pss_mb:.0f} MB, "
                          f"RSS {s.rss_mb:.0f} MB, {s.fds} fds, {s.threads} threads", file=sys.stderr, flush=True)
            await asyncio.sleep(1.5)  # a duplicate would follow within a channel's 1 s pacing
            await w.call("close")
        finally:
            await w.finish()
            await farm.stop()
            await slack.stop()
    got = Counter((p.channel, p.link) for p in slack.posts)
    want = Counter((slack_target(channel_of(i)), link) for i, link in published)
    if got != want:
        missing, extra = want - got, got - want
        problems.append(f"Slack record differs: {sum(missing.values())} missing, {sum(extra.values())} extra "
                        f"(e.g. {list(missing or extra)[:2]})")
    return samples, problems


def report(n: int, rounds: int, samples: list[Sample], problems: list[str]) -> tuple[str, bool]:
    lines = [f"## Soak: {n:,} feeds, {rounds} rounds, 1% of the feeds gain an item each round", "",
             "| round | poll | PSS (tree) | RSS (tree) | relay RSS | fds | threads | DB |",
             "|---|---|---|---|---|---|---|---|"]
    step = max(1, len(samples) // 10)
    for s in samples[::step] + ([samples[-1]] if samples and (len(samples) - 1) % step else []):
        lines.append(f"| {s.round} | {s.poll_s:.2f}s | {s.pss_mb:.1f} MB | {s.rss_mb:.1f} MB | {s.relay_rss_mb:.1f} MB "
                     f"| {s.fds} | {s.threads} | {s.db_mb:.1f} MB |")
    ok = not problems and len(samples) == rounds
    lines.append("")
    after = samples[len(samples) // 5:]  # warm-up: SQLite's page cache, the pools, the allocator settle
    if len(after) >= 2:
        # Peaks, half against half: the parse pool retires its workers every 1,000 parses, so a single sample
        # may catch the moment between the old workers' exit and the new ones' start.
        first, second = after[: len(after) // 2], after[len(after) // 2:]
        pss = max(s.pss_mb for s in first), max(s.pss_mb for s in second)
        fds = max(s.fds for s in first), max(s.fds for s in second)
        threads = max(s.threads for s in first), max(s.threads for s in second)
        checks = [
            (pss[1] - pss[0] <= MAX_PSS_GROWTH_MB,
             f"peak PSS {pss[0]:.1f} MB in rounds {first[0].round}–{first[-1].round}, {pss[1]:.1f} MB in rounds "
             f"{second[0].round}–{second[-1].round} (limit +{MAX_PSS_GROWTH_MB:g} MB)"),
            (fds[1] - fds[0] <= MAX_FD_GROWTH, f"peak open file descriptors {fds[0]} → {fds[1]}"),
            (threads[1] - threads[0] <= MAX_THREAD_GROWTH, f"peak threads {threads[0]} → {threads[1]}"),
        ]
        for passed, text in checks:
            ok = ok and passed
            lines.append(f"- {'PASS' if passed else 'FAIL'} {text}")
        lines.append(f"- relay RSS {after[0].relay_rss_mb:.1f} → {samples[-1].relay_rss_mb:.1f} MB; database "
                     f"{after[0].db_mb:.1f} → {samples[-1].db_mb:.1f} MB (it keeps the items and messages, pruned "
                     "after `retention` and `dedupe_window`)")
    lines.append(f"- {'PASS' if not problems else 'FAIL'} every published item reached Slack exactly once"
                 + ("" if not problems else ": " + "; ".join(problems[:5])))
    return "\n".join(lines) + "\n", ok


def run(n: int, rounds: int, out: str | None = None) -> int:
    samples, problems = asyncio.run(soak(n, rounds))
    text, ok = report(n, rounds, samples, problems)
    print(text)
    if out:
        Path(out).write_text(text)
    return 0 if ok else 1
