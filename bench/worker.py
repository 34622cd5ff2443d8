"""The measured process: runs feedrelay (or a baseline) on command from the orchestrator.

Every scenario gets a fresh worker, so its peak RSS (``ru_maxrss``) is that scenario's alone, and the
feed farm and fake Slack (in the orchestrator) never share this process's CPU or memory.

Protocol: one JSON object per line on stdin ({"op": ..., **args}); one JSON reply per line on the
original stdout ({"ok": true, ...} or {"ok": false, "error": ...}). Anything else that would go to
stdout is sent to stderr instead.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import resource
import sys
import time
import traceback
from typing import Any

# Imported before measuring the starting RSS, so "rss_start" is the cost of feedrelay's imports.
import feedparser
import httpx

from feedrelay.config import parse_config
from feedrelay.ingest.parsing import parse_feed
from feedrelay.runtime.relay import Relay


def peak_rss_mb() -> float:
    """Peak RSS of this process. Not ru_maxrss: Linux carries it across fork+exec, so a worker would start
    with the orchestrator's high-water mark. VmHWM belongs to this address space and starts afresh at exec."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # elsewhere: best effort


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Worker:
    def __init__(self) -> None:
        self.relay: Relay | None = None
        self.rss_start = peak_rss_mb()

    async def op_patch(self, path: str) -> dict[str, Any]:
        """Run a Python file in this process before the relay opens (A/B-test a candidate change)."""
        import runpy

        runpy.run_path(path, run_name="bench_patch")
        return {}

    async def op_ping(self) -> dict[str, Any]:
        return {"rss_start_mb": self.rss_start}

    # --- feedrelay ------------------------------------------------------------------------------

    async def op_open(self, config: str, db: str, env: dict[str, str], path: str) -> dict[str, Any]:
        cfg = parse_config(config, path, env)
        self.relay = Relay(cfg, db, environ=env, stream=sys.stderr)
        t0 = time.perf_counter()
        await self.relay.start()
        return {"seconds": time.perf_counter() - t0, "feeds": len(cfg.feeds)}

    async def op_poll(self, profile: str | None = None, profiler: str = "cprofile") -> dict[str, Any]:
        assert self.relay is not None
        prof = _Profiler(profile, profiler) if profile else None
        cpu0 = cpu_seconds()
        t0 = time.perf_counter()
        if prof:
            prof.start()
        reports = await self.relay.poll_all()
        elapsed = time.perf_counter() - t0
        if prof:
            prof.stop()
        cpu = cpu_seconds() - cpu0
        errors = [r for r in reports if r.error]
        return {
            "seconds": elapsed,
            "cpu": cpu,
            "feeds": len(reports),
            "unchanged": sum(r.unchanged for r in reports),
            "first_poll": sum(r.first_poll for r in reports),
            "skipped": sum(r.skipped for r in reports),
            "new": sum(r.new for r in reports),
            "queued": sum(r.queued for r in reports),
            "errors": len(errors),
            "error_samples": [f"{r.feed}: {r.error}" for r in errors[:5]],
            "warnings": sum(1 for r in reports if r.warning),
        }

    async def op_warm(self) -> dict[str, Any]:
        """Start the relay's parse worker processes now, if it has them and would use them, so the timed
        poll measures a running daemon (whose pool is up) rather than the pool's one-time start-up."""
        import feedrelay.runtime.relay as relay_module

        assert self.relay is not None
        pool = getattr(self.relay, "parse_pool", None)
        threshold = getattr(relay_module, "PARALLEL_PARSE_MIN_FEEDS", 0)
        if pool is None or len(self.relay.config.feeds) < threshold:
            return {"seconds": None}
        t0 = time.perf_counter()
        workers = getattr(pool, "workers", 1)
        await asyncio.gather(*(pool(time.sleep, 0.2) for _ in range(workers)))  # reach every worker
        return {"seconds": time.perf_counter() - t0 - 0.2}

    async def op_daemon(self, seconds: float, tail: float) -> dict[str, Any]:
        """Run feedrelay's daemon (`feedrelay run`'s Daemon: APScheduler timers → the dispatcher) on the open
        relay for ``seconds``, then ``tail`` seconds more without recording, then stop it as SIGTERM does.
        Returns when each feed's timer fired (APScheduler's scheduled run times, jitter included), by feed."""
        from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent

        from feedrelay.runtime.daemon import Daemon

        assert self.relay is not None
        daemon = Daemon(self.relay)
        fires: dict[int, list[float]] = {}
        recording = [True]

        def submitted(event: JobSubmissionEvent) -> None:
            if recording[0] and event.job_id.startswith("feed-"):
                fires.setdefault(int(event.job_id[5:]), []).extend(t.timestamp() for t in event.scheduled_run_times)

        stalls: list[float] = []  # how much later than asked each 50 ms sleep of a bystander task woke up

        async def watch_loop() -> None:
            while True:
                t = time.monotonic()
                await asyncio.sleep(0.05)
                stalls.append(time.monotonic() - t - 0.05)

        starts: dict[int, list[float]] = {}  # when the dispatcher started each poll (before any I/O)
        poll = self.relay.poll

        async def timed_poll(feed: Any) -> Any:
            if recording[0] and feed.name.startswith("feed-"):
                starts.setdefault(int(feed.name[5:]), []).append(time.time())
            return await poll(feed)

        self.relay.poll = timed_poll  # type: ignore[method-assign]  # (the dispatcher calls relay.poll)
        daemon.scheduler.add_listener(submitted, EVENT_JOB_SUBMITTED)
        t0 = time.time()
        run = asyncio.create_task(daemon.run())
        watcher = asyncio.create_task(watch_loop())
        await asyncio.sleep(seconds)
        recording[0] = False
        t_end = time.time()
        watcher.cancel()
        await asyncio.sleep(tail)
        daemon.stopping.set()
        await run
        del self.relay.poll
        polls = {labels["result"]: v for labels, v in self.relay.counters.samples("feedrelay_polls_total")}
        stalls.sort()
        return {"t0": t0, "t_end": t_end, "t_stop": time.time(), "fires": fires, "starts": starts, "polls": polls,
                "fatal": daemon.fatal, "stall_max": stalls[-1] if stalls else 0.0,
                "stall_p99": stalls[int(len(stalls) * 0.99)] if stalls else 0.0}

    async def op_deliver(self) -> dict[str, Any]:
        assert self.relay is not None
        self.relay.start_delivering()
        return {}

    async def op_drain(self, max_wait: float) -> dict[str, Any]:
        assert self.relay is not None
        t0 = time.perf_counter()
        reports = await self.relay.drain(max_wait)
        return {"seconds": time.perf_counter() - t0, "sent": sum(r.sent for r in reports.values()),
                "pending": sum(r.pending for r in reports.values())}

    async def op_close(self) -> dict[str, Any]:
        if self.relay is not None:
            await self.relay.close()
            self.relay = None
        return {"rss_peak_mb": peak_rss_mb(), "rss_start_mb": self.rss_start}

    # --- baselines ------------------------------------------------------------------------------

    async def op_naive(self, urls: list[str], cap: int) -> dict[str, Any]:
        """The naive relay: one feed at a time, httpx.Client GET + feedparser.parse(bytes)."""
        subset = urls[:cap]
        entries = 0
        t0 = time.perf_counter()
        with httpx.Client(timeout=30, trust_env=False) as client:
            for url in subset:
                resp = client.get(url)
                resp.raise_for_status()
                entries += len(feedparser.parse(resp.content).entries)
        elapsed = time.perf_counter() - t0
        return {"seconds": elapsed, "timed_feeds": len(subset), "entries": entries,
                "estimate": elapsed * len(urls) / max(1, len(subset))}

    async def op_floor(self, bodies_file: str, total: int, cap: int) -> dict[str, Any]:
        """Parse the same bodies with no I/O: feedparser alone (feedrelay's flags and the defaults),
        and feedrelay's whole parse step (feedparser + HTML-to-text + items)."""
        bodies = _read_bodies(bodies_file)[:cap]
        out: dict[str, Any] = {"timed_feeds": len(bodies), "total": total}
        runs = {
            "feedparser": lambda b: feedparser.parse(io.BytesIO(b), sanitize_html=False, resolve_relative_uris=False),
            "feedparser_defaults": lambda b: feedparser.parse(b),
            "parse_feed": lambda b: parse_feed(b, "http://127.0.0.2/feed.xml", "application/rss+xml"),
        }
        for name, fn in runs.items():
            t0 = time.perf_counter()
            for b in bodies:
                fn(b)
            elapsed = time.perf_counter() - t0
            out[name] = elapsed * total / max(1, len(bodies))
        return out


class _Profiler:
    """cProfile (stdlib) or pyinstrument (if installed) around the timed poll.

    cProfile only sees the thread that enabled it, and feedrelay parses in asyncio.to_thread, so while
    profiling the parse runs inline on the event loop (with the GIL it never ran in parallel anyway)."""

    def __init__(self, path: str, kind: str) -> None:
        self.path = path
        self.kind = kind
        self._orig = asyncio.to_thread

        async def inline(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

        self._inline = inline

    def start(self) -> None:
        asyncio.to_thread = self._inline  # type: ignore[assignment]
        if self.kind == "pyinstrument":
            from pyinstrument import Profiler

            self.p: Any = Profiler(async_mode="disabled", interval=0.001)
        else:
            import cProfile

            self.p = cProfile.Profile()
        self.p.start() if self.kind == "pyinstrument" else self.p.enable()

    def stop(self) -> None:
        asyncio.to_thread = self._orig  # type: ignore[assignment]
        if self.kind == "pyinstrument":
            session = self.p.stop()
            session.save(self.path + ".pyisession")
            with open(self.path + ".txt", "w") as f:
                f.write(self.p.output_text(unicode=False, color=False, show_all=False))
            with open(self.path + ".html", "w") as f:
                f.write(self.p.output_html())
            return
        import pstats

        self.p.disable()
        self.p.dump_stats(self.path + ".pstats")
        with open(self.path + ".txt", "w") as f:
            st = pstats.Stats(self.p, stream=f)
            st.sort_stats("tottime").print_stats(40)
            st.sort_stats("cumulative").print_stats(60)


def write_bodies(path: str, bodies: list[bytes]) -> None:
    with open(path, "wb") as f:
        for b in bodies:
            f.write(len(b).to_bytes(4, "big"))
            f.write(b)


def _read_bodies(path: str) -> list[bytes]:
    with open(path, "rb") as f:
        data = f.read()
    out, pos = [], 0
    while pos < len(data):
        n = int.from_bytes(data[pos : pos + 4], "big")
        out.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return out


async def main() -> None:
    # Keep the protocol channel private: nothing else may write to it.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    worker = Worker()
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        msg = json.loads(line)
        op = msg.pop("op")
        if op == "exit":
            break
        try:
            result = await getattr(worker, f"op_{op}")(**msg)
            reply = {"ok": True, **result}
        except Exception as exc:
            traceback.print_exc()
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        proto.write(json.dumps(reply) + "\n")
    if worker.relay is not None:
        await worker.relay.close()


if __name__ == "__main__":
    asyncio.run(main())
