"""Keep the benchmark harness working: a small run (N=50) of every scenario with its correctness checks.

Timing targets are judged by `python -m bench` itself, never here; this only asserts that the harness runs
feedrelay's real poll/deliver path (and the daemon's scheduling) and that no item is lost or duplicated in any
scenario.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_runs_every_scenario_without_loss_or_duplicates() -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
    p = subprocess.run([sys.executable, "-m", "bench", "--quick"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=240)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for scenario in ("steady", "changed", "cold", "trickle"):
        rows = [line for line in p.stdout.splitlines() if line.startswith(f"| {scenario} |")]
        assert rows and all(line.rstrip().endswith("| OK |") for line in rows), (scenario, rows)


def test_bench_soak_quick_keeps_running_without_loss_or_growth() -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
    p = subprocess.run([sys.executable, "-m", "bench", "--soak", "--quick"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=240)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "PASS every published item reached Slack exactly once" in p.stdout
    assert "| 8 |" in p.stdout  # all 8 rounds ran
    assert "FAIL" not in p.stdout


def test_bench_daemon_quick_schedules_every_feed_and_delivers_every_item_once() -> None:
    """`feedrelay run`'s scheduling (Daemon → dispatcher) at N=50, with and without a slow host."""
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
    p = subprocess.run([sys.executable, "-m", "bench", "--daemon", "--quick"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=240)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    rows = [line for line in p.stdout.splitlines() if line.startswith("| 50 |")]
    assert len(rows) == 2 and all(line.rstrip().endswith("| OK |") for line in rows), rows
    assert "(1/1)" in rows[0] and "(1/1)" in rows[1]  # the item published reached Slack, once


def test_bench_epss_quick_loads_and_looks_up_through_feedrelays_own_path() -> None:
    """The EPSS daily load benchmark at 20,000 rows: both loads keep every row; timing is judged by the full run."""
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
    p = subprocess.run([sys.executable, "-m", "bench", "--epss", "--quick"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=240)
    assert "| first (empty table) | 20,000 |" in p.stdout and "| daily (rows replaced) | 20,000 |" in p.stdout, \
        p.stdout[-3000:] + p.stderr[-3000:]
    assert "lookup per message:" in p.stdout
