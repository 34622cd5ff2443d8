"""A `--patch` file: make `--profile` measure CPU time per function instead of wall time.

    uv run python -m bench --feeds 1000 --scenarios steady --profile /tmp/prof --patch bench/profile_cpu.py

cProfile's default clock is wall time, so with the parse pool busy on the other core a function that merely
waited for the CPU looks expensive. thread_time counts only the event loop thread's own CPU (it is slower:
figures are inflated ~2x, the proportions hold)."""

import cProfile
import time

_Profile = cProfile.Profile


class _CPUProfile(_Profile):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(time.thread_time)


cProfile.Profile = _CPUProfile  # type: ignore[misc]
