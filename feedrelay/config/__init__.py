"""The configuration stage: ``feeds.toml`` as typed, immutable objects.

- :mod:`feedrelay.config.model`: what the configuration is (``Config``, ``Feed``, ``Route``, ``Filter``…);
- :mod:`feedrelay.config.load`: reading and validating the file, with errors that name the file, line and key;
- :mod:`feedrelay.config.durations`: "90s", "1h30m", "10MB";
- :mod:`feedrelay.config.route_options`, :mod:`feedrelay.config.opml`, :mod:`feedrelay.config.schema`: a route's
  delivery options, OPML import and export, the JSON Schema for editors.
"""

from __future__ import annotations

from feedrelay.config.durations import MAX_DURATION, MAX_SIZE, format_duration, parse_duration, parse_size
from feedrelay.config.load import _Checker, _valid_url, database_of, load_config, parse_config
from feedrelay.config.model import (
    DEFAULT_FILTER_FIELDS,
    DEFAULT_SLACK_API_URL,
    DEFAULT_TOKEN_ENV,
    FILTER_FIELDS,
    Alerts,
    Channel,
    Config,
    ConfigError,
    CveLookup,
    Defaults,
    Epss,
    Feed,
    Filter,
    HttpOptions,
    Metrics,
    Route,
    SlackSettings,
    basic_credentials,
)

__all__ = [
    "DEFAULT_FILTER_FIELDS", "DEFAULT_SLACK_API_URL", "DEFAULT_TOKEN_ENV", "FILTER_FIELDS", "MAX_DURATION", "MAX_SIZE",
    "Alerts", "Channel", "Config", "ConfigError", "CveLookup", "Defaults", "Epss", "Feed", "Filter", "HttpOptions",
    "Metrics", "Route",
    "SlackSettings", "_Checker", "_valid_url", "basic_credentials", "database_of", "format_duration", "load_config",
    "parse_config", "parse_duration", "parse_size",
]
