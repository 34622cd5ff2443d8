"""The typed configuration: what feeds.toml says, as immutable objects every stage reads."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_TOKEN_ENV = "SLACK_BOT_TOKEN"
FILTER_FIELDS = ("title", "summary", "content", "categories", "author")
DEFAULT_FILTER_FIELDS = ("title", "summary", "categories")


class ConfigError(Exception):
    """A problem with the configuration file, phrased for the person editing it."""



@dataclass(frozen=True)
class Filter:
    """Keyword and regex rules of one route. Empty means everything passes."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    include_regex: tuple[str, ...] = ()
    exclude_regex: tuple[str, ...] = ()
    fields: tuple[str, ...] = DEFAULT_FILTER_FIELDS
    # Security-source rules (used by NVD/KEV items; see docs/configuration.md).
    min_severity: str | None = None
    min_score: float | None = None
    include_unscored: bool = True
    unscored_hold: float = 0.0  # include_unscored = "after 72h": hold an unscored item this long for a score
    vendors: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    cwes: tuple[str, ...] = ()
    kev_only: bool = False
    # CISA's SSVC (cvelist items): exploitation values that pass; automatable = true/false (None: not a rule).
    ssvc_exploitation: tuple[str, ...] = ()
    automatable: bool | None = None
    min_epss: float | None = None  # EPSS probability (0–1) a CVE must reach; unknown EPSS does not pass
    min_epss_percentile: float | None = None  # EPSS percentile (0–1) a CVE must reach

    @property
    def epss_bar(self) -> bool:
        """Whether the route has an EPSS rule (which makes feedrelay fetch EPSS scores)."""
        return self.min_epss is not None or self.min_epss_percentile is not None

    @property
    def security_rules(self) -> bool:
        """Whether a rule here judges CVEs (on an RSS route: the CVEs an entry mentions)."""
        return bool(self.min_severity is not None or self.min_score is not None or self.vendors or self.products
                    or self.cwes or self.kev_only or self.epss_bar or self.ssvc_exploitation
                    or self.automatable is not None)
    ecosystems: tuple[str, ...] = ()  # GitHub advisories: GitHub's ecosystem names (pip, npm, maven…)
    packages: tuple[str, ...] = ()  # GitHub advisories: package names, lowercase

    @property
    def empty(self) -> bool:
        return self == Filter(fields=self.fields)


@dataclass(frozen=True)
class Route:
    channel: str
    filter: Filter = field(default_factory=Filter)
    # What a change to an item already posted here sends: thread | broadcast | post | off (see docs/configuration.md)
    updates: str = "off"
    max_age: float = 0.0  # seconds; entries dated older are remembered, not posted (0: no limit)
    template: str = "full"  # a preset (full, compact) or a custom template: what the route's messages show
    mention: tuple[str, ...] = ()  # Slack mention syntax added to the route's messages (config only)
    timezone: str = "UTC"  # IANA name: where "daily" (digests, daily threads) begins and ends for this route
    max_per_poll: int = 0  # past this many posts in one poll, the rest are one "N more" message (0: no cap)
    thread: str = ""  # "daily": the day's posts go as replies under one parent message per day ("" = off)


@dataclass(frozen=True)
class Channel:
    """A named destination. ``kind`` is ``slack`` (bot token), ``webhook`` or ``console``."""

    name: str
    kind: str
    target: str = ""  # Slack channel name/ID for kind=slack
    webhook_env: str = ""  # env var holding the webhook URL for kind=webhook
    unfurl: bool = False
    min_interval: float = 1.0  # Slack allows about one message per second per channel
    template: str = ""  # the template of routes to this channel that name none ("" = full)


@dataclass(frozen=True)
class HttpOptions:
    """A feed's own request headers, basic auth and User-Agent. Header values and credentials are named by
    environment variable, never held: config files get committed. They go to the feed's origin only."""

    headers: tuple[tuple[str, str], ...] = ()  # (header name, variable holding its value)
    username_env: str = ""  # basic auth: both set, or neither
    password_env: str = ""
    user_agent: str = ""  # "" = feedrelay's own; not a secret, and it follows redirects

    def env_names(self) -> tuple[str, ...]:
        return tuple(var for _, var in self.headers) + tuple(v for v in (self.username_env, self.password_env) if v)


@dataclass(frozen=True)
class Feed:
    name: str
    url: str
    kind: str  # rss | nvd | kev | cvelist, or a kind registered with feedrelay.register_source
    interval: float
    backlog: int
    routes: tuple[Route, ...]
    api_key_env: str = ""  # NVD only
    http: HttpOptions = HttpOptions()
    token_env: str = ""  # GitHub advisories only: the variable holding a GitHub token (higher rate limits)


@dataclass(frozen=True)
class Defaults:
    interval: float = 900.0
    backlog: int = 0
    timeout: float = 30.0
    max_body: int = 10_000_000
    max_redirects: int = 5
    per_host: int = 4
    dedupe_window: float = 30 * 86400.0
    retention: float = 90 * 86400.0
    jitter: float = 0.1
    max_age: float = 0.0  # routes' age limit (0: none)
    timezone: str = "UTC"  # routes' time zone (IANA name)


@dataclass(frozen=True)
class SlackSettings:
    token_env: str = DEFAULT_TOKEN_ENV
    api_url: str = DEFAULT_SLACK_API_URL


@dataclass(frozen=True)
class Alerts:
    """Alerts about the relay itself (a feed that keeps failing, a channel Slack refuses), each linking to
    its runbook."""

    channel: str  # a name from [channels]
    feed_failing_after: float = 3600.0  # a feed failing this long (a blip is not news) gets an alert
    runbook_url: str = ""  # where docs/runbooks.md is published, for links; without it alerts name the file


@dataclass(frozen=True)
class CveLookup:
    """NVD lookups by id of CVEs that RSS entries mention and no NVD or KEV feed told of (``[cve_lookup]``).
    On when the table is present or an NVD feed is configured; never otherwise (no surprise calls to NVD)."""

    enabled: bool = False
    url: str = ""  # the NVD CVE API 2.0 endpoint: the NVD feed's, else the public one
    api_key_env: str = ""  # the NVD feed's, unless given
    max_per_poll: int = 10  # lookups one poll of one feed may make; the rest wait for the next poll
    refresh: float = 86400.0  # a looked-up CVE is asked for again after this
    retry_unknown: float = 6 * 3600.0  # an id NVD did not know is asked for again after this


@dataclass(frozen=True)
class Metrics:
    host: str  # where /metrics listens: an address of this machine, not a public one (there is no auth)
    port: int


DEFAULT_EPSS_URL = "https://epss.empiricalsecurity.com/epss_scores-current.csv.gz"


@dataclass(frozen=True)
class Epss:
    """FIRST's daily EPSS scores: where the file is, and how often to look for a new one (a conditional GET)."""

    url: str = DEFAULT_EPSS_URL
    refresh: float = 6 * 3600.0


@dataclass(frozen=True)
class Config:
    path: Path
    defaults: Defaults
    slack: SlackSettings
    channels: Mapping[str, Channel]
    feeds: tuple[Feed, ...]
    database: str = "feedrelay.db"
    alerts: Alerts | None = None
    metrics: Metrics | None = None
    epss: Epss | None = None  # set by [epss], or by any route's min_epss / min_epss_percentile; None: never fetched
    cve_lookup: CveLookup = CveLookup()

    def feed(self, name: str) -> Feed | None:
        return next((f for f in self.feeds if f.name == name), None)

    def secret_env_names(self) -> set[str]:
        names = {self.slack.token_env}
        names.update(c.webhook_env for c in self.channels.values() if c.webhook_env)
        names.update(f.api_key_env for f in self.feeds if f.api_key_env)
        if self.cve_lookup.api_key_env:
            names.add(self.cve_lookup.api_key_env)
        names.update(f.token_env for f in self.feeds if f.token_env)
        names.update(var for f in self.feeds for var in f.http.env_names())
        return names

    def feed_env(self) -> dict[str, list[str]]:
        """The variables feeds fetch with (API keys, header values, basic auth) → those feeds."""
        needs: dict[str, list[str]] = {}
        for feed in self.feeds:
            keys = tuple(v for v in (feed.api_key_env, feed.token_env) if v)
            for var in dict.fromkeys(keys + feed.http.env_names()):
                needs.setdefault(var, []).append(feed.name)
        return needs

    def delivery_env(self) -> dict[str, list[str]]:
        """The variable each Slack-bound channel posts with (bot token or webhook URL) → those channels."""
        needs: dict[str, list[str]] = {}
        for name, ch in self.channels.items():
            var = self.slack.token_env if ch.kind == "slack" else ch.webhook_env if ch.kind == "webhook" else None
            if var:
                needs.setdefault(var, []).append(name)
        return needs

    def missing_delivery_env(self, environ: Mapping[str, str] = os.environ) -> list[str]:
        """One line per unset variable, naming the channels that would print to the terminal instead of posting."""
        return [f"${var} is not set: channel(s) {', '.join(repr(c) for c in channels)} would print to the terminal "
                "instead of posting to Slack" for var, channels in sorted(self.delivery_env().items())
                if not environ.get(var, "").strip()]

    def secrets(self, environ: Mapping[str, str] = os.environ) -> list[str]:
        """The secret values present in the environment, for redaction: as used, without surrounding whitespace
        (a value written with a trailing newline is stripped before use, and logged that way by libraries)."""
        values = [environ[n].strip() for n in sorted(self.secret_env_names()) if environ.get(n, "").strip()]
        for feed in self.feeds:  # basic auth goes out as base64("user:password"): a library's log would show that
            user, password = (environ.get(v, "").strip() for v in (feed.http.username_env, feed.http.password_env))
            if feed.http.username_env and (user or password):
                values.append(basic_credentials(user, password))
        return values


def basic_credentials(username: str, password: str) -> str:
    """The token of an ``Authorization: Basic`` header (RFC 7617)."""
    import base64

    return base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


