"""Shared fixtures: local feed / Slack servers, and a proxy-free environment."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import FakeSlack, FeedServer

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
