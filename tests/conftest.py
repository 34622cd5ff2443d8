"""Shared fixtures: local feed / Slack servers, and a proxy-free environment."""

from __future__ import annotations

import compileall
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
