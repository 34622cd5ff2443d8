"""Sources and sinks by kind: the ``type =`` of a ``[[feeds]]`` table, the kind of a channel.

The built-in kinds register here like any other; a library user adds one with :func:`register_source` or
:func:`register_sink` before loading the config. This module imports nothing of feedrelay at load time, so the
config loader can ask it which feed types are valid without pulling in HTTP, parsing or Slack.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from feedrelay.config import Channel, Config, Feed
    from feedrelay.delivery.sinks import Sink
    from feedrelay.ingest.fetch import Fetcher
    from feedrelay.sources import Source


@dataclass(frozen=True)
class SourceContext:
    """What a source factory gets besides its feed. ``environ`` is the Relay's environment: a source reads its
    secrets (an API key) from it, never from the process environment."""

    fetcher: Fetcher
    environ: Mapping[str, str] = field(default_factory=dict)
    parse: Any = None  # runs feed parsing, e.g. in the Relay's worker processes; None parses in a thread


@dataclass
class SinkContext:
    """What a sink factory gets besides its channel: the relay's environment, the shared HTTP session, the shared
    Slack bot client (None without a token), and a list of notices the Relay logs as warnings."""

    config: Config
    environ: Mapping[str, str]
    stream: TextIO | None
    timeout: float
    session: Any = None  # an aiohttp.ClientSession shared by every sink
    slack: Any = None  # slack_sdk's AsyncWebClient, when the bot token is set
    notices: list[str] = field(default_factory=list)


SourceFactory = Callable[["Feed", SourceContext], "Source"]
SinkFactory = Callable[["Channel", SinkContext], "Sink"]


@dataclass(frozen=True)
class SourceKind:
    name: str
    factory: SourceFactory
    default_url: str = ""  # used when a feed of this type gives no url
    # Its items are security news (CVEs, advisories): stories judged again each time the source returns them, and
    # routes of it take the security filter keys.
    security: bool = False


_sources: dict[str, SourceKind] = {}
_sinks: dict[str, SinkFactory] = {}


def register_source(kind: str, factory: SourceFactory, *, default_url: str = "", security: bool = False,
                    replace: bool = False) -> None:
    """Make ``type = "<kind>"`` valid in feeds.toml; ``factory(feed, context)`` builds the feed's source.
    ``security``: its items are security news (see :class:`SourceKind`)."""
    if not kind or not kind.isidentifier():
        raise ValueError(f"a source kind is a short identifier such as 'rss'; got {kind!r}")
    if kind in _sources and not replace:
        raise ValueError(f"source kind {kind!r} is already registered; pass replace=True to replace it")
    _sources[kind] = SourceKind(kind, factory, default_url, security)


def register_sink(kind: str, factory: SinkFactory, *, replace: bool = False) -> None:
    """``factory(channel, context)`` builds the sink of every channel of this kind (slack, webhook, console…)."""
    if not kind or not kind.isidentifier():
        raise ValueError(f"a sink kind is a short identifier such as 'slack'; got {kind!r}")
    if kind in _sinks and not replace:
        raise ValueError(f"sink kind {kind!r} is already registered; pass replace=True to replace it")
    _sinks[kind] = factory


def source_kinds() -> tuple[str, ...]:
    """The registered feed types, in registration order (the built-ins first)."""
    return tuple(_sources)


def source_kind(kind: str) -> SourceKind | None:
    return _sources.get(kind)


def is_security(kind: str) -> bool:
    """Whether feeds of this type bring security news (NVD, KEV…): see :class:`SourceKind`."""
    entry = _sources.get(kind)
    return entry is not None and entry.security


def sink_kinds() -> tuple[str, ...]:
    return tuple(_sinks)


def build_source(feed: Feed, context: SourceContext) -> Source:
    entry = _sources.get(feed.kind)
    if entry is None:
        raise ValueError(f"unknown feed type {feed.kind!r}; registered: {', '.join(_sources)}")
    return entry.factory(feed, context)


def build_sink(channel: Channel, context: SinkContext) -> Sink:
    factory = _sinks.get(channel.kind)
    if factory is None:
        raise ValueError(f"unknown channel kind {channel.kind!r}; registered: {', '.join(_sinks)}")
    return factory(channel, context)


# --- the built-in kinds (imported when first used: `feedrelay check` never loads the NVD client) ---------------


def _rss(feed: Feed, ctx: SourceContext) -> Source:
    from feedrelay.sources.rss import RSSSource

    return RSSSource(feed, ctx.fetcher, ctx.parse)


def _nvd(feed: Feed, ctx: SourceContext) -> Source:
    from feedrelay.sources.nvd import NVDSource

    return NVDSource(feed, ctx.fetcher, environ=ctx.environ)


def _kev(feed: Feed, ctx: SourceContext) -> Source:
    from feedrelay.sources.kev import KEVSource

    return KEVSource(feed, ctx.fetcher)


def _cvelist(feed: Feed, ctx: SourceContext) -> Source:
    from feedrelay.sources.cvelist import CVEListSource

    return CVEListSource(feed, ctx.fetcher)


def _ghsa(feed: Feed, ctx: SourceContext) -> Source:
    from feedrelay.sources.ghsa import GHSASource

    return GHSASource(feed, ctx.fetcher, environ=ctx.environ)


def _slack(channel: Channel, ctx: SinkContext) -> Sink:
    from feedrelay.delivery.sinks import ConsoleSink, SlackBotSink

    if ctx.slack is not None:
        return SlackBotSink(channel, ctx.slack, workspace="slack-bot")
    ctx.notices.append(f"${ctx.config.slack.token_env} is not set: messages for channel {channel.name!r} are "
                       f"printed to the terminal instead of posted to {channel.target}")
    return ConsoleSink(channel, ctx.stream)


def _webhook(channel: Channel, ctx: SinkContext) -> Sink:
    from feedrelay.delivery.sinks import ConsoleSink, WebhookSink

    url = ctx.environ.get(channel.webhook_env, "").strip()
    if url:
        from slack_sdk.webhook.async_client import AsyncWebhookClient

        # retry_handlers=[]: the outbox owns retries, so each attempt is visible and paced.
        return WebhookSink(channel, AsyncWebhookClient(url, session=ctx.session, timeout=int(ctx.timeout),
                                                       retry_handlers=[]))
    ctx.notices.append(f"${channel.webhook_env} is not set: messages for channel {channel.name!r} are printed "
                       "to the terminal instead")
    return ConsoleSink(channel, ctx.stream)


def _console(channel: Channel, ctx: SinkContext) -> Sink:
    from feedrelay.delivery.sinks import ConsoleSink

    return ConsoleSink(channel, ctx.stream)


register_source("rss", _rss)
register_source("nvd", _nvd, default_url="https://services.nvd.nist.gov/rest/json/cves/2.0", security=True)
register_source("kev", _kev,
                default_url="https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json",
                security=True)
register_source("cvelist", _cvelist, default_url="https://raw.githubusercontent.com/CVEProject/cvelistV5/main/",
                security=True)
register_source("ghsa", _ghsa, default_url="https://api.github.com/advisories", security=True)
register_sink("slack", _slack)
register_sink("webhook", _webhook)
register_sink("console", _console)
