"""Run feedrelay as a user does: a real process, a real config file, a real SQLite database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOKEN = "xoxb-test-token"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):  # an inline table
        return "{ " + ", ".join(f"{toml_value(str(k))} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def write_config(path: Path, *, feeds: list[dict[str, Any]], channels: Mapping[str, Mapping[str, Any]] | None = None,
                 defaults: Mapping[str, Any] | None = None, alerts: Mapping[str, Any] | None = None,
                 metrics: Mapping[str, Any] | None = None, epss: Mapping[str, Any] | None = None,
                 tables: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """A feeds.toml; a feed's "routes" is a list of tables; ``tables`` are further top-level tables by name."""
    lines = []
    for table, values in (("defaults", defaults), ("alerts", alerts), ("metrics", metrics), ("epss", epss),
                          *(tables or {}).items()):
        if values:
            lines.append(f"[{table}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
    # Tests that are not about pacing do not wait a second between posts (Slack's pace is tested on its own).
    for name, table in (channels or {"readings": {"slack": "#readings", "min_interval": "0s"}}).items():
        lines.append(f"[channels.{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
    for feed in feeds:
        lines.append("[[feeds]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in feed.items() if k != "routes"]
        for route in feed.get("routes", []):
            lines.append("[[feeds.routes]]")
            lines += [f"{k} = {toml_value(v)}" for k, v in route.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class Relay:
    """A feedrelay installation in a temporary directory, pointed at a fake Slack."""

    def __init__(self, tmp: Path, api_url: str | None, token: str | None = TOKEN,
                 extra_env: Mapping[str, str] | None = None) -> None:
        self.dir = tmp
        self.config = tmp / "feeds.toml"
        self.db = tmp / "feedrelay.db"
        env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
        env.pop("SLACK_BOT_TOKEN", None)
        env.pop("FEEDRELAY_CONFIG", None)
        env.pop("FEEDRELAY_DB", None)
        if token:
            env["SLACK_BOT_TOKEN"] = token
        if api_url:
            env["SLACK_API_URL"] = api_url
        env.update(extra_env or {})
        self.env = env

    def configure(self, **kwargs: Any) -> Path:
        return write_config(self.config, **kwargs)

    def cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "feedrelay", "-c", str(self.config), *args]

    def __call__(self, *args: str, timeout: float = 60) -> Result:
        p = subprocess.run(self.cmd(*args), env=self.env, cwd=self.dir, capture_output=True, text=True,
                           timeout=timeout)
        return Result(p.returncode, p.stdout, p.stderr)

    def start(self, *args: str) -> Daemon:
        out = open(self.dir / "daemon.out", "w")  # noqa: SIM115 - closed by Daemon.stop
        err = open(self.dir / "daemon.err", "w")  # noqa: SIM115
        proc = subprocess.Popen(self.cmd(*args, "run"), env=self.env, cwd=self.dir, stdout=out, stderr=err,
                                text=True)
        return Daemon(proc, self.dir)


class Daemon:
    """`feedrelay run` in the background; its output goes to files so tests can read it while it runs."""

    def __init__(self, proc: subprocess.Popen[str], directory: Path) -> None:
        self.proc = proc
        self.dir = directory

    def log(self) -> str:
        return (self.dir / "daemon.err").read_text()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 20) -> Result:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout)
        return Result(self.proc.returncode, (self.dir / "daemon.out").read_text(), self.log())


def wait_until(predicate: Any, timeout: float = 15.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
