"""feedrelay as a library: the declared names, sources and sinks by kind, the Relay's environment."""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import feedrelay
from feedrelay import registry
from tests.cli import write_config
from tests.nvd_server import FakeNVD, synthetic
from tests.servers import FeedServer


@pytest.fixture
def clean_registry() -> Iterator[None]:
    """Kinds a test registers are gone after it (the registry is process-wide)."""
    sources, sinks = dict(registry._sources), dict(registry._sinks)
    yield
    registry._sources.clear()
    registry._sources.update(sources)
    registry._sinks.clear()
    registry._sinks.update(sinks)


def test_unknown_feed_type_lists_the_registered_kinds(tmp_path: Path, clean_registry: None) -> None:
    path = write_config(tmp_path / "feeds.toml", channels={"x": {"console": True}},
                        feeds=[{"name": "Tickets", "type": "jira", "url": "http://127.0.0.1:1/", "channels": ["x"]}])
    with pytest.raises(feedrelay.ConfigError) as refused:
        feedrelay.load_config(path)
    assert str(refused.value) == f"{path}:5: feeds[0].type: expected rss, nvd, kev, cvelist or ghsa; got 'jira'"

    feedrelay.register_source("jira", lambda feed, ctx: StaticSource([]))
    assert feedrelay.load_config(path).feeds[0].kind == "jira"
    path.write_text(path.read_text().replace('"jira"', '"jra"'))
    with pytest.raises(feedrelay.ConfigError, match=r"expected rss, nvd, kev, cvelist, ghsa or jira; got 'jra'"):
        feedrelay.load_config(path)
    with pytest.raises(ValueError, match="already registered"):
        feedrelay.register_source("jira", lambda feed, ctx: StaticSource([]))


class StaticSource:
    def __init__(self, items: list[feedrelay.Item]) -> None:
        self.items = items

    async def poll(self, state: dict[str, Any]) -> feedrelay.PollResult:
        return feedrelay.PollResult(self.items, {"polls": state.get("polls", 0) + 1})


class ListSink:
    """A sink of a user's own: keeps what it is sent."""

    pause_key = "list"
    description = "a list"

    def __init__(self, sent: list[str]) -> None:
        self.sent = sent

    async def send(self, message: dict[str, Any], *, plain: bool = False) -> feedrelay.Outcome:
        self.sent.append(message["text"])
        return feedrelay.Outcome.sent(str(len(self.sent)))


def test_a_registered_source_and_sink_relay_like_the_built_in_ones(tmp_path: Path, clean_registry: None) -> None:
    items = [feedrelay.Item(key="T-1", title="Disk full on db-3", link="https://tickets.example.com/T-1")]
    feedrelay.register_source("tickets", lambda feed, ctx: StaticSource(items))
    sent: list[str] = []
    # Every console channel now goes to the list: a user can replace a built-in kind, too.
    feedrelay.register_sink("console", lambda channel, ctx: ListSink(sent), replace=True)
    path = write_config(tmp_path / "feeds.toml", channels={"ops": {"console": True, "min_interval": "0s"}},
                        feeds=[{"name": "Tickets", "type": "tickets", "url": "https://tickets.example.com/feed",
                                "backlog": 5, "channels": ["ops"]}])

    async def main() -> list[feedrelay.FeedReport]:
        async with feedrelay.Relay(feedrelay.load_config(path), environ={}) as relay:
            reports = await relay.poll_all()
            await relay.drain(10)
            return reports

    [report] = asyncio.run(main())
    assert (report.error, report.new, report.queued) == (None, 1, 1)
    assert len(sent) == 1 and "Disk full on db-3" in sent[0]


def test_the_nvd_source_reads_its_api_key_from_the_relays_environment(
        tmp_path: Path, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # A library user hands the Relay its environment: the key in it is sent, whatever the process environment has.
    nvd = FakeNVD(feed_server, [synthetic("CVE-2026-0101")])
    path = write_config(tmp_path / "feeds.toml", channels={"sec": {"console": True, "min_interval": "0s"}},
                        feeds=[{"name": "NVD", "type": "nvd", "url": nvd.url, "api_key_env": "NVD_API_KEY",
                                "backlog": 5, "channels": ["sec"]}])
    monkeypatch.setenv("NVD_API_KEY", "from-the-process-environment")
    config = feedrelay.load_config(path)

    def poll(environ: dict[str, str]) -> list[str | None]:
        feed_server.clear()

        async def main() -> None:
            async with feedrelay.Relay(config, str(tmp_path / f"{len(environ)}.db"), environ=environ,
                                       stream=io.StringIO()) as relay:
                [report] = await relay.poll_all()
                assert report.error is None, report.error

        asyncio.run(main())
        return [r.headers.get("apikey") for r in feed_server.requests]

    assert poll({"NVD_API_KEY": "key-given-to-the-relay"}) == ["key-given-to-the-relay"]
    assert poll({}) == [None]
    assert os.environ["NVD_API_KEY"] == "from-the-process-environment"  # (there, and never read)


PUBLIC = {
    "__version__", "load_config", "parse_config", "Config", "Feed", "Channel", "Route", "Filter", "Defaults",
    "Relay", "FeedReport", "ChannelReport", "Status", "FeedStatus", "ChannelStatus", "read_status", "Preview",
    "PreviewEntry", "PreviewVerdict", "Item", "Source", "PollResult", "Sink", "Outcome", "register_source",
    "register_sink", "SourceContext", "SinkContext", "ConfigError", "SourceError", "StoreError", "FeedNotFound",
    "FetchError",
}


def test_the_declared_api_is_what_import_feedrelay_gives() -> None:
    # Removing or renaming one of these breaks library users: change this list only on purpose, and say so.
    assert set(feedrelay.__all__) == PUBLIC and len(feedrelay.__all__) == len(PUBLIC)
    assert set(feedrelay.__all__) == {"__version__", *feedrelay._EXPORTS}
    for name in PUBLIC:
        assert getattr(feedrelay, name) is not None, name
    assert issubclass(feedrelay.ConfigError, Exception) and issubclass(feedrelay.SourceError, Exception)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        feedrelay.Nope  # noqa: B018


def test_import_feedrelay_is_cheap_and_the_version_has_one_source(tmp_path: Path) -> None:
    # The CLI starts with `import feedrelay`: the API's names load on first use, not with it.
    heavy = "('sqlite_utils', 'httpx', 'aiohttp', 'slack_sdk', 'feedparser')"
    probe = f"import sys, feedrelay, feedrelay.cli; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "[]"
    from importlib.metadata import version

    assert feedrelay.__version__ == version("feedrelay")
    pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    assert f'\nversion = "{feedrelay.__version__}"\n' in pyproject
    package = Path(feedrelay.__file__).parent
    literals = [p for p in package.rglob("*.py") if re.search(r"""__version__\s*=\s*["']""", p.read_text())]
    assert literals == []  # pyproject.toml is the one place it is written
