"""``uv run python -m bench [--feeds 100,1000,10000] [--delay 0.05] [--scenarios ...] [--quick] [--out FILE]``,
``uv run python -m bench --store`` for the store scaling benchmark, ``uv run python -m bench --soak`` for the
long-running memory and resource check and ``uv run python -m bench --daemon`` for `feedrelay run`'s scheduling."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from .run import SCENARIOS, Options, amain


def _ints(text: str) -> list[int]:
    return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description="feedrelay performance benchmarks "
                                "(a local feed farm and fake Slack on 127.0.0.0/8; see bench/README.md)")
    p.add_argument("--feeds", default="100,1000,10000", help="comma-separated feed counts N (default: %(default)s)")
    p.add_argument("--delay", type=float, default=0.05,
                   help="per-response delay of the feed farm in seconds; every scenario also runs with 0 "
                        "(default: %(default)s)")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="any of %(default)s")
    p.add_argument("--quick", action="store_true", help="smoke test: N=50, the --delay value only, small baselines "
                        "(< 30 s); exits non-zero on any correctness FAIL")
    p.add_argument("--out", metavar="FILE", help="also write the report as markdown to FILE")
    p.add_argument("--json", metavar="FILE", help="also write raw results as JSON to FILE")
    p.add_argument("--hosts", type=int, default=64, help="loopback hosts the farm listens on (default: %(default)s)")
    p.add_argument("--per-host", type=int, default=4,
                   help="feedrelay's [defaults] per_host in the generated config (default: %(default)s, "
                        "feedrelay's own default)")
    p.add_argument("--naive-cap", type=int, default=200,
                   help="time the naive sequential baseline on at most this many feeds, extrapolate the rest "
                        "(default: %(default)s)")
    p.add_argument("--floor-cap", type=int, default=500,
                   help="time the feedparser floor on at most this many bodies, extrapolate the rest "
                        "(default: %(default)s)")
    p.add_argument("--repeat", type=int, default=1,
                   help="run each scenario R times and keep the fastest (noisy/shared machines); every run "
                        "must pass the correctness checks (default: %(default)s)")
    p.add_argument("--no-baselines", action="store_true", help="skip the naive and feedparser baselines")
    p.add_argument("--profile", metavar="DIR", help="profile each timed poll_all into DIR (cProfile, or "
                                                    "pyinstrument with --profiler pyinstrument if installed)")
    p.add_argument("--profiler", choices=("cprofile", "pyinstrument"), default="cprofile")
    p.add_argument("--patch", metavar="FILE.py",
                   help="run this Python file in each feedrelay worker before the Relay opens, to A/B-test a "
                        "candidate change (e.g. a monkeypatch) without editing feedrelay; the report says so")
    p.add_argument("--store", action="store_true", help="run the store scaling benchmark instead")
    p.add_argument("--epss", action="store_true", help="run the EPSS daily load and lookup benchmark instead")
    p.add_argument("--epss-rows", type=int, default=300_000, help="rows of the generated EPSS file for --epss "
                   "(default: %(default)s)")
    p.add_argument("--store-sizes", default="10000,100000,1000000",
                   help="remembered-item counts for --store (default: %(default)s)")
    p.add_argument("--soak", action="store_true", help="run the soak test instead: one relay, many rounds; memory, "
                   "file descriptors and threads must not grow (N = the first --feeds value, default 1000)")
    p.add_argument("--soak-rounds", type=int, default=300, help="rounds for --soak (default: %(default)s)")
    p.add_argument("--daemon", action="store_true", help="run the daemon scenario instead: `feedrelay run`'s own "
                   "scheduling for a few intervals, with and without a slow host (N = --feeds, default 1000,10000)")
    p.add_argument("--daemon-interval", type=float, default=60.0,
                   help="every feed's interval in seconds for --daemon (default: %(default)s)")
    p.add_argument("--daemon-cycles", type=int, default=3, help="intervals to run for --daemon (default: %(default)s)")
    p.add_argument("--slow-delay", type=float, default=5.0,
                   help="seconds the slow host takes to answer in --daemon (default: %(default)s)")
    p.add_argument("-v", "--verbose", action="store_true", help="show more of the worker logs of failed runs")
    args = p.parse_args(argv)

    if args.soak:
        from .soak import run as run_soak

        n = _ints(args.feeds)[0] if args.feeds != p.get_default("feeds") else 1000
        return run_soak(50 if args.quick else n, min(args.soak_rounds, 8) if args.quick else args.soak_rounds,
                        out=args.out)

    if args.daemon:
        from .daemon import run as run_daemon

        if args.quick:
            return run_daemon([50], interval=2.0, cycles=2, slow_delay=1.5, per_host=args.per_host, out=args.out)
        feeds = _ints(args.feeds) if args.feeds != p.get_default("feeds") else [1000, 10000]
        return run_daemon(feeds, interval=args.daemon_interval, cycles=args.daemon_cycles, slow_delay=args.slow_delay,
                          per_host=args.per_host, out=args.out)

    if args.epss:
        from .epss_load import run as run_epss

        return run_epss(20_000 if args.quick else args.epss_rows, out=args.out)

    if args.store:
        from .store_scale import run as run_store

        return run_store(_ints(args.store_sizes), out=args.out)

    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")
    # --quick is a smoke test of every scenario and every check (< 30 s), not a measurement: one delay only.
    delays = [args.delay] + ([0.0] if args.delay and not args.quick else [])
    feeds = [50] if args.quick else _ints(args.feeds)
    opts = Options(feeds=feeds, delays=delays, scenarios=scenarios, hosts=args.hosts, per_host=args.per_host,
                   naive_cap=min(args.naive_cap, 20) if args.quick else args.naive_cap,
                   floor_cap=min(args.floor_cap, 50) if args.quick else args.floor_cap,
                   baselines=not args.no_baselines, profile=args.profile, profiler=args.profiler,
                   patch=args.patch, repeat=max(1, args.repeat), verbose=args.verbose)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return asyncio.run(amain(opts, args.out, args.json))


if __name__ == "__main__":
    sys.exit(main())
