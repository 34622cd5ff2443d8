"""Shared fixtures: local feed / Slack servers, and a proxy-free environment."""

from __future__ import annotations

import compileall
import inspect
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import FakeSlack, FeedServer

# The suite starts feedrelay a few hundred times. With PYTHONDONTWRITEBYTECODE set (some CI images set it),
# every start recompiles slack-sdk, aiohttp, httpx and the rest from source: 0.9 s instead of 0.4 s a run.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False
# Compiled now, once: some tests cap a running daemon's file size (a full disk), and a module it first imported
# then would leave a truncated .pyc that breaks every later start.
compileall.compile_dir(Path(__file__).parent.parent / "feedrelay", quiet=1)

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # slack-sdk picks up *_PROXY variables and ignores NO_PROXY, so 127.0.0.1 would go via the proxy.
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with FeedServer() as server:
        yield server


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        yield slack


# Tests that run feedrelay as a user runs it (the CLI in a subprocess, a daemon, Slack's pacing) or at full scale
# (marked by hand) are the slow tier: `pytest -m "not e2e"` runs the rest in well under 30 s while you work.
E2E_FIXTURES = {"relay", "hostile", "big", "world", "fake_slack"}
E2E_CALLS = ("subprocess", "run_check(", "Relay(", "Daemon(")
E2E_MODULES = {"test_e2e_relay", "test_faults", "test_polling", "test_deploy", "test_bench_smoke", "test_upgrade",
               "test_nvd_catchup", "test_secrets"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: runs feedrelay end to end (subprocesses, daemons, Slack pacing)")


def _runs_feedrelay(item: pytest.Item) -> bool:
    module = item.module.__name__.rsplit(".", 1)[-1] if getattr(item, "module", None) else ""
    if module in E2E_MODULES or E2E_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    try:
        source = inspect.getsource(item.function)  # type: ignore[attr-defined]
    except (AttributeError, OSError, TypeError):
        return False
    return any(call in source for call in E2E_CALLS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _runs_feedrelay(item):
            item.add_marker(pytest.mark.e2e)
