"""feedrelay: relay RSS/Atom/JSON feeds, NVD CVEs and CISA KEV entries into Slack channels.

The public API is what ``__all__`` lists; everything else may change between versions. A short example::

    import asyncio, feedrelay

    async def main() -> None:
        async with feedrelay.Relay(feedrelay.load_config("feeds.toml")) as relay:
            await relay.poll_all()
            await relay.drain(max_wait=60)
            print(relay.status().feeds)

    asyncio.run(main())

Names are imported on first use (PEP 562), so ``import feedrelay`` (and the CLI's start) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# name → the module that defines it
_EXPORTS = {
    # configuration
    "load_config": "feedrelay.config",
    "parse_config": "feedrelay.config",
    "Config": "feedrelay.config",
    "Feed": "feedrelay.config",
    "Channel": "feedrelay.config",
    "Route": "feedrelay.config",
    "Filter": "feedrelay.config",
    "Defaults": "feedrelay.config",
    # the relay and what its calls return
    "Relay": "feedrelay.runtime.relay",
    "FeedReport": "feedrelay.runtime.pipeline",
    "ChannelReport": "feedrelay.delivery.deliverer",
    "Status": "feedrelay.runtime.status",
    "FeedStatus": "feedrelay.runtime.status",
    "ChannelStatus": "feedrelay.runtime.status",
    "read_status": "feedrelay.runtime.status",
    "Preview": "feedrelay.runtime.preview",
    "PreviewEntry": "feedrelay.runtime.preview",
    "PreviewVerdict": "feedrelay.runtime.preview",
    # data
    "Item": "feedrelay.model",
    # extending: sources and sinks by kind
    "Source": "feedrelay.sources",
    "PollResult": "feedrelay.sources",
    "Sink": "feedrelay.delivery.sinks",
    "Outcome": "feedrelay.delivery.sinks",
    "register_source": "feedrelay.registry",
    "register_sink": "feedrelay.registry",
    "SourceContext": "feedrelay.registry",
    "SinkContext": "feedrelay.registry",
    # errors
    "ConfigError": "feedrelay.config",
    "SourceError": "feedrelay.sources",
    "StoreError": "feedrelay.store",
    "FeedNotFound": "feedrelay.runtime.preview",
    "FetchError": "feedrelay.ingest.fetch",
}

# (spelled out for readers and linters; a test keeps it equal to _EXPORTS)
__all__ = [
    "Channel",
    "ChannelReport",
    "ChannelStatus",
    "Config",
    "ConfigError",
    "Defaults",
    "Feed",
    "FeedNotFound",
    "FeedReport",
    "FeedStatus",
    "FetchError",
    "Filter",
    "Item",
    "Outcome",
    "PollResult",
    "Preview",
    "PreviewEntry",
    "PreviewVerdict",
    "Relay",
    "Route",
    "Sink",
    "SinkContext",
    "Source",
    "SourceContext",
    "SourceError",
    "Status",
    "StoreError",
    "__version__",
    "load_config",
    "parse_config",
    "read_status",
    "register_sink",
    "register_source",
]

if TYPE_CHECKING:
    from feedrelay.config import Channel, Config, ConfigError, Defaults, Feed, Filter, Route, load_config, parse_config
    from feedrelay.delivery.deliverer import ChannelReport
    from feedrelay.delivery.sinks import Outcome, Sink
    from feedrelay.ingest.fetch import FetchError
    from feedrelay.model import Item
    from feedrelay.registry import SinkContext, SourceContext, register_sink, register_source
    from feedrelay.runtime.pipeline import FeedReport
    from feedrelay.runtime.preview import FeedNotFound, Preview, PreviewEntry, PreviewVerdict
    from feedrelay.runtime.relay import Relay
    from feedrelay.runtime.status import ChannelStatus, FeedStatus, Status, read_status
    from feedrelay.sources import PollResult, Source, SourceError
    from feedrelay.store import StoreError

    __version__: str


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        # pyproject.toml is the one place the version is written; the installed package's metadata carries it.
        value: Any = version("feedrelay")
    elif name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'feedrelay' has no attribute {name!r}")
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS, "__version__"])
