"""Load and validate ``feeds.toml`` into the typed configuration (feedrelay.config.model).

Every error names the file, the key path and (where it can be found) the line, and says what
would be valid. Secrets are never in the file: it names the environment variables that hold them.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from feedrelay import registry
from feedrelay.config import route_options
from feedrelay.config.durations import parse_duration, parse_size, parse_zone
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
)


class _Checker:
    """Walks the raw TOML tables, collecting typed values and precise errors."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def fail(self, keypath: str, message: str) -> ConfigError:
        line = self._locate(keypath)
        where = f"{self.path}:{line}" if line else str(self.path)
        return ConfigError(f"{where}: {keypath}: {message}")

    def _locate(self, keypath: str) -> int | None:
        """Best-effort line of a key path such as ``feeds[2].routes[0].chanel`` or ``channels.x.slack``."""
        start, line = 0, None
        table: list[str] = []
        parts = re.findall(r"([^.\[\]]+)(?:\[(\d+)\])?", keypath)
        for k, (name, index) in enumerate(parts):
            table.append(name)
            dotted = r"\s*\.\s*".join(map(re.escape, table))
            if index:
                header = re.compile(r"^\s*\[\[\s*" + dotted + r"\s*\]\]")
                hits = [n for n in range(start, len(self.lines)) if header.match(self.lines[n])]
                if int(index) < len(hits):
                    start = hits[int(index)]
                    line = start + 1
                    continue
            # A parent table often has no header of its own ([channels.x] but no [channels]): a child's header
            # locates it, rather than a key of the same name further down (a feed's channels = [...]).
            header = re.compile(r"^\s*\[\s*" + dotted + (r"\s*\]" if k == len(parts) - 1 else r"\s*[.\]]"))
            found = next((n for n in range(start, len(self.lines)) if header.match(self.lines[n])), None)
            if found is None:
                # A key of the current table: search until the next table header.
                key = re.compile(r"^\s*[\"']?" + re.escape(name) + r"[\"']?\s*=")
                for n in range(start, len(self.lines)):
                    if n > start and re.match(r"^\s*\[", self.lines[n]) and line is not None:
                        break
                    if key.match(self.lines[n]):
                        found = n
                        break
            if found is not None:
                start, line = found, found + 1
        return line

    def table(self, raw: object, keypath: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.fail(keypath, f"expected a table, got {_kind(raw)}")
        for key in raw:
            if key not in allowed:
                hint = _suggest(key, allowed)
                raise self.fail(
                    f"{keypath}.{key}" if keypath else key,
                    f"unknown key{hint}; valid keys here: {', '.join(allowed)}",
                )
        return raw

    def get(self, raw: dict[str, Any], key: str, keypath: str, kind: type | tuple[type, ...], default: Any) -> Any:
        if key not in raw:
            return default
        value = raw[key]
        where = f"{keypath}.{key}" if keypath else key
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.fail(where, f"expected {_kind_name(kind)}, got a boolean")
        if not isinstance(value, kind):
            raise self.fail(where, f"expected {_kind_name(kind)}, got {_kind(value)}")
        return value

    def strings(self, raw: dict[str, Any], key: str, keypath: str) -> tuple[str, ...]:
        value = raw.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(f"{keypath}.{key}", "expected a list of non-empty strings")
        return tuple(value)

    def convert(self, raw: dict[str, Any], key: str, keypath: str, fn: Any, default: Any) -> Any:
        if key not in raw:
            return default
        try:
            return fn(raw[key])
        except ValueError as exc:
            raise self.fail(f"{keypath}.{key}", f"{exc}; got {raw[key]!r}") from None


def _kind(value: object) -> str:
    return {dict: "a table", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number"}.get(type(value), type(value).__name__)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", bool: "true or false", int: "an integer", float: "a number", list: "a list",
             dict: "a table"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _suggest(key: str, allowed: tuple[str, ...]) -> str:
    import difflib

    close = difflib.get_close_matches(key, allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


_SECURITY_KEYS = ("min_severity", "min_score", "include_unscored", "vendors", "products", "cwes", "kev_only",
                  "ssvc_exploitation", "automatable", "min_epss", "min_epss_percentile", "ecosystems",
                  "packages")
_EXPLOITATION = ("none", "poc", "active")
_SSVC_KEYS: tuple[str, ...] = ("ssvc_exploitation", "automatable")
_PACKAGE_KEYS = ("ecosystems", "packages")  # GitHub advisories only: NVD and KEV items name no packages
# The ecosystems GitHub's advisories API knows (its `ecosystem` parameter).
GHSA_ECOSYSTEMS = ("actions", "composer", "erlang", "go", "maven", "npm", "nuget", "other", "pip", "pub",
                   "rubygems", "rust", "swift")
_FILTER_KEYS = ("include", "exclude", "include_regex", "exclude_regex", "fields", *_SECURITY_KEYS)
_FEED_KEYS = ("name", "url", "type", "interval", "backlog", "channel", "channels", "routes", "api_key_env",
              "token_env",
              "headers", "auth", "user_agent", "updates", *_FILTER_KEYS, *route_options.ROUTE_KEYS)
_NVD_URL = "https://services.nvd.nist.gov/rest/json/cves/2.0"  # the public endpoint, as registry.py has it
_UPDATES = ("thread", "broadcast", "post", "off")
_SEVERITIES = ("none", "low", "medium", "high", "critical")


def _check_regexes(c: _Checker, patterns: tuple[str, ...], keypath: str) -> None:
    import regex

    for i, pattern in enumerate(patterns):
        try:
            regex.compile(pattern)
        except regex.error as exc:
            raise c.fail(f"{keypath}[{i}]", f"invalid regular expression {pattern!r}: {exc}") from None
        except RecursionError:
            # (the regex module's parser recurses per group: thousands of nested groups exhaust the stack)
            raise c.fail(f"{keypath}[{i}]", f"regular expression nested too deeply ({pattern[:40]!r}…); "
                         "simplify the pattern") from None


def _valid_url(url: str) -> bool:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname) and not re.search(r"\s", url)


def _filter(c: _Checker, raw: dict[str, Any], keypath: str) -> Filter:
    fields = c.strings(raw, "fields", keypath) or DEFAULT_FILTER_FIELDS
    hold = c.convert(raw, "include_unscored", keypath, _unscored, None)  # None: true; 0: false; else a hold
    for name in fields:
        if name not in FILTER_FIELDS and name not in ("description", "vendor", "product"):
            raise c.fail(f"{keypath}.fields", f"unknown field {name!r}; choose from {', '.join(FILTER_FIELDS)}")
    flt = Filter(
        include=c.strings(raw, "include", keypath),
        exclude=c.strings(raw, "exclude", keypath),
        include_regex=c.strings(raw, "include_regex", keypath),
        exclude_regex=c.strings(raw, "exclude_regex", keypath),
        fields=fields,
        min_severity=c.get(raw, "min_severity", keypath, str, None),
        min_score=c.convert(raw, "min_score", keypath, _score, None),
        include_unscored=hold is None or hold > 0,
        unscored_hold=hold or 0.0,
        vendors=tuple(v.lower() for v in c.strings(raw, "vendors", keypath)),
        products=tuple(v.lower() for v in c.strings(raw, "products", keypath)),
        cwes=tuple(v.upper() for v in c.strings(raw, "cwes", keypath)),
        kev_only=c.get(raw, "kev_only", keypath, bool, False),
        ssvc_exploitation=tuple(v.lower() for v in c.strings(raw, "ssvc_exploitation", keypath)),
        automatable=c.get(raw, "automatable", keypath, bool, None),
        min_epss=c.convert(raw, "min_epss", keypath, _fraction, None),
        min_epss_percentile=c.convert(raw, "min_epss_percentile", keypath, _fraction, None),
        ecosystems=tuple(v.lower() for v in c.strings(raw, "ecosystems", keypath)),
        packages=tuple(v.lower() for v in c.strings(raw, "packages", keypath)),
    )
    for i, eco in enumerate(flt.ecosystems):
        # A misspelt ecosystem ("pypi", "cargo") would match no advisory, and the route would stay silent.
        if eco not in GHSA_ECOSYSTEMS:
            raise c.fail(f"{keypath}.ecosystems[{i}]", f"unknown ecosystem {eco!r}; GitHub's ecosystems are "
                                                      f"{', '.join(GHSA_ECOSYSTEMS)}")
    if flt.min_severity is not None and flt.min_severity.lower() not in _SEVERITIES:
        raise c.fail(f"{keypath}.min_severity", f"expected one of {', '.join(_SEVERITIES)}")
    for i, cwe in enumerate(flt.cwes):
        # An ID written otherwise ("79", "CWE79") would match no item, and the route would stay silent.
        if not re.fullmatch(r"CWE-\d+", cwe):
            raise c.fail(f"{keypath}.cwes[{i}]", f'expected a CWE ID such as "CWE-79", not {cwe!r}')
    for i, value in enumerate(flt.ssvc_exploitation):
        # A misspelt value ("activ", "exploited") would match no CVE, and the route would stay silent.
        if value not in _EXPLOITATION:
            raise c.fail(f"{keypath}.ssvc_exploitation[{i}]", f"expected one of {', '.join(_EXPLOITATION)} (CISA SSVC "
                                                             f"Exploitation), not {value!r}")
    _check_regexes(c, flt.include_regex, f"{keypath}.include_regex")
    _check_regexes(c, flt.exclude_regex, f"{keypath}.exclude_regex")
    return flt


def _unscored(value: object) -> float | None:
    """include_unscored: true (None), false (0) or "after DURATION" (the hold, in seconds)."""
    if isinstance(value, bool):
        return None if value else 0.0
    if isinstance(value, str) and (m := re.fullmatch(r"\s*after\s+(\S.*?)\s*", value)):
        try:
            hold = parse_duration(m.group(1))
        except ValueError:
            pass
        else:
            if hold > 0:
                return hold
    raise ValueError('expected true, false or "after DURATION", such as "after 72h"')


def _updates(c: _Checker, raw: dict[str, Any], keypath: str, kind: str, channel: Channel | None) -> str:
    """A route's `updates`: thread by default for CVEs in a bot channel, post in a webhook channel (it cannot
    thread or edit), off for RSS (blogs touch their posts)."""
    webhook = channel is not None and channel.kind == "webhook"
    default = "off" if not registry.is_security(kind) else "post" if webhook else "thread"
    value = c.get(raw, "updates", keypath, str, default)
    if value not in _UPDATES:
        raise c.fail(f"{keypath}.updates", f"expected one of {', '.join(_UPDATES)}; got {value!r}")
    if webhook and channel is not None and value in ("thread", "broadcast"):
        raise c.fail(f"{keypath}.updates", f"channel {channel.name!r} is a webhook, which cannot reply in a thread "
                                           'or edit a message; use updates = "post" (a new message) or "off"')
    return value


def _fraction(value: object) -> float:
    """min_epss / min_epss_percentile: 0.1 or "10%" (EPSS publishes both as fractions of 1)."""
    if isinstance(value, str) and (m := re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%\s*", value)):
        value = float(m.group(1)) / 100
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError('expected a probability between 0 and 1 or a percentage such as "10%"')
    return float(value)


def _score(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 10:
        raise ValueError("expected a CVSS score between 0 and 10")
    return float(value)


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SLACK_LINK = re.compile(r"^https://[a-z0-9.-]+\.slack\.com/archives/([CG][A-Z0-9]{6,})/?$", re.IGNORECASE)


def _env_name(c: _Checker, raw: dict[str, Any], key: str, keypath: str, default: str, *, example: str,
              holds: str) -> str:
    """A key that names the environment variable holding a secret. The error never quotes the value: a user
    who pasted the secret itself would otherwise see it in the terminal and in every log line."""
    if key not in raw:
        return default
    value = c.get(raw, key, keypath, str, default)
    if not _ENV_NAME.fullmatch(value):
        raise c.fail(f"{keypath}.{key}",
                     f"must name an environment variable (like {example}), not hold {holds} itself; put the "
                     f"secret in that variable")
    return value


_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an RFC 9110 token
# Headers the HTTP client sets itself, per request or per connection.
_CLIENT_HEADERS = ("host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer",
                   "upgrade", "proxy-connection", "accept-encoding", "if-none-match", "if-modified-since")
_HEADERS_EXAMPLE = 'headers = { "X-Service-Token" = { env = "SVC_TOKEN" } }'
_AUTH_EXAMPLE = 'auth = { username_env = "FEED_USER", password_env = "FEED_PASSWORD" }'


def _http_options(c: _Checker, t: dict[str, Any], keypath: str) -> HttpOptions:
    """A feed's headers, basic auth and User-Agent. Header values and credentials only come from environment
    variables: the file gets committed. Errors never quote a value, which may be a pasted secret."""
    username_env = password_env = ""
    if "auth" in t:
        if not isinstance(t["auth"], dict):
            raise c.fail(f"{keypath}.auth", f"expected {_AUTH_EXAMPLE} (basic auth; the credentials go in those "
                                             "variables, never in this file)")
        at = c.table(t["auth"], f"{keypath}.auth", ("username_env", "password_env"))
        for key in ("username_env", "password_env"):
            if key not in at:
                raise c.fail(f"{keypath}.auth", f"give both username_env and password_env, e.g. {_AUTH_EXAMPLE}")
        username_env = _env_name(c, at, "username_env", f"{keypath}.auth", "", example="FEED_USER",
                                 holds="the user name")
        password_env = _env_name(c, at, "password_env", f"{keypath}.auth", "", example="FEED_PASSWORD",
                                 holds="the password")
    headers: list[tuple[str, str]] = []
    raw = t.get("headers", {})
    if not isinstance(raw, dict):
        raise c.fail(f"{keypath}.headers", f"expected a table such as {_HEADERS_EXAMPLE}")
    seen: set[str] = set()
    for name, value in raw.items():
        where = f"{keypath}.headers.{name}"
        lower = name.lower()
        if not _HEADER_NAME.fullmatch(name):
            raise c.fail(f"{keypath}.headers", f"{name[:60]!r} is not a valid HTTP header name")
        if lower in seen:
            raise c.fail(where, "this header is given twice (header names ignore case)")
        seen.add(lower)
        if lower == "user-agent":
            raise c.fail(where, 'set user_agent = "..." on the feed instead (a User-Agent is not a secret)')
        if lower == "authorization" and username_env:
            raise c.fail(where, "give either auth = { ... } or an Authorization header, not both")
        if lower in _CLIENT_HEADERS:
            raise c.fail(where, "feedrelay's HTTP client sets this header itself")
        if not isinstance(value, dict):
            # Never quoted: it is likely the secret itself.
            raise c.fail(where, f"header values come only from environment variables, since config files get "
                                f'committed: write {{ env = "VAR_NAME" }} (as in {_HEADERS_EXAMPLE}) and put the '
                                "value in that variable")
        vt = c.table(value, where, ("env",))
        if "env" not in vt:
            raise c.fail(where, 'expected { env = "VAR_NAME" }, naming the variable that holds the value')
        headers.append((name, _env_name(c, vt, "env", where, "", example="SVC_TOKEN", holds="the header value")))
    user_agent = ""
    if "user_agent" in t:
        user_agent = c.get(t, "user_agent", keypath, str, "").strip()
        if not user_agent or len(user_agent) > 500 or re.search(r"[\x00-\x1f\x7f]", user_agent):
            raise c.fail(f"{keypath}.user_agent", 'expected one line of at most 500 characters, such as '
                                                  '"Mozilla/5.0 (compatible; feedrelay; +https://example.com/bot)"')
    return HttpOptions(headers=tuple(headers), username_env=username_env, password_env=password_env,
                       user_agent=user_agent)


def _channel(c: _Checker, name: str, raw: object) -> Channel:
    keypath = f"channels.{name}"
    t = c.table(raw, keypath, ("slack", "webhook_env", "console", "unfurl", "min_interval", "template"))
    unfurl = c.get(t, "unfurl", keypath, bool, False)
    template = route_options.template(c, t, keypath)
    min_interval = c.convert(t, "min_interval", keypath, parse_duration, 1.0)
    kinds = [k for k in ("slack", "webhook_env", "console") if k in t]
    if len(kinds) != 1:
        raise c.fail(keypath, 'give exactly one of slack = "#channel-or-ID", webhook_env = "ENV_VAR_NAME" '
                              "or console = true")
    if "slack" in t:
        target = c.get(t, "slack", keypath, str, "").strip()
        if not target:
            raise c.fail(f"{keypath}.slack", 'expected a channel name such as "#readings" or an ID such as "C0123"')
        if "://" in target or target.lower().startswith("xox"):
            # Never quoted: `status`, the log and alerts name the target, and a webhook URL or token is a secret.
            link = _SLACK_LINK.search(target)
            hint = (f'use the ID from the channel\'s link: slack = "{link.group(1)}"' if link else
                    "put a webhook URL in an environment variable and name it with webhook_env = \"VAR\" instead; a "
                    "bot token goes in the variable [slack] token_env names")
            raise c.fail(f"{keypath}.slack", 'expected a channel name such as "#readings" or an ID such as "C0123", '
                                             f"not a URL or a token; {hint}")
        return Channel(name, "slack", target=target, unfurl=unfurl, min_interval=min_interval, template=template)
    if "webhook_env" in t:
        env = _env_name(c, t, "webhook_env", keypath, "", example="TEAM_WEBHOOK_URL", holds="the webhook URL")
        return Channel(name, "webhook", webhook_env=env, unfurl=unfurl, min_interval=min_interval, template=template)
    if c.get(t, "console", keypath, bool, True) is not True:
        raise c.fail(f"{keypath}.console", "set console = true or remove the key")
    return Channel(name, "console", unfurl=unfurl, min_interval=min_interval, template=template)


def _feed(c: _Checker, i: int, raw: object, defaults: Defaults, channels: Mapping[str, Channel]) -> Feed:
    keypath = f"feeds[{i}]"
    t = c.table(raw, keypath, _FEED_KEYS)
    name = c.get(t, "name", keypath, str, "").strip()
    if not name:
        raise c.fail(f"{keypath}.name", "every feed needs a name (used in messages, logs and `status`)")
    kind = c.get(t, "type", keypath, str, "rss")
    if (source_kind := registry.source_kind(kind)) is None:
        *others, last = registry.source_kinds()
        raise c.fail(f"{keypath}.type", f"expected {', '.join(others)} or {last}; got {kind!r}")
    url = c.get(t, "url", keypath, str, "").strip() or source_kind.default_url
    if not url:
        raise c.fail(f"{keypath}.url", f"feed {name!r} needs a url")
    if url and not _valid_url(url):
        raise c.fail(f"{keypath}.url", f"expected an http:// or https:// URL; got {url!r}")
    interval = c.convert(t, "interval", keypath, parse_duration, defaults.interval)
    if interval < 1:
        raise c.fail(f"{keypath}.interval", 'expected at least "1s" (and most publishers ask for minutes)')
    backlog = c.get(t, "backlog", keypath, int, defaults.backlog)
    if backlog < 0:
        raise c.fail(f"{keypath}.backlog", "expected 0 or more")
    api_key_env = ""
    if t.get("api_key_env") != "":  # an empty value has always meant no key, like leaving it out
        api_key_env = _env_name(c, t, "api_key_env", keypath, "", example="NVD_API_KEY", holds="the API key")
    if api_key_env and kind != "nvd":
        raise c.fail(f"{keypath}.api_key_env", "only NVD feeds (type = \"nvd\") take an API key")
    token_env = ""
    if t.get("token_env") != "":
        token_env = _env_name(c, t, "token_env", keypath, "", example="GITHUB_TOKEN", holds="the token")
        # GitHub's tokens look like variable names (ghp_…, github_pat_…): one pasted here is still refused, unquoted.
        if token_env.lower().startswith(("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")):
            raise c.fail(f"{keypath}.token_env", "must name an environment variable (like GITHUB_TOKEN), not hold "
                                                 "the token itself; put the token in that variable")
    if token_env and kind != "ghsa":
        raise c.fail(f"{keypath}.token_env", "only GitHub advisory feeds (type = \"ghsa\") take a token")
    http = _http_options(c, t, keypath)

    routes: list[Route] = []
    raw_routes = t.get("routes", [])
    if not isinstance(raw_routes, list):
        raise c.fail(f"{keypath}.routes", "expected [[feeds.routes]] tables")
    if "channel" in t and "channels" in t:
        raise c.fail(f"{keypath}.channel", "give either channel = \"x\" or channels = [\"x\", \"y\"], not both")
    if "channel" in t and not isinstance(t["channel"], str):
        raise c.fail(f"{keypath}.channel", "expected a channel name")
    shorthand = [t["channel"]] if "channel" in t else list(c.strings(t, "channels", keypath))
    if not registry.is_security(kind):
        # On an RSS route the security keys judge the CVEs an entry mentions (decide/mentions.py); a hold waits for
        # a source to return the CVE scored, which only security feeds do.
        for table, path in [(t, keypath)] + [(r, f"{keypath}.routes[{j}]") for j, r in
                                             enumerate(raw_routes) if isinstance(r, dict)]:
            if isinstance(table.get("include_unscored"), str):
                raise c.fail(f"{path}.include_unscored", 'a hold ("after …") applies to NVD and KEV feeds only; on '
                                                         "an RSS route a mentioned CVE without a score passes with "
                                                         "include_unscored = true, or not with false")
            # CISA's SSVC comes with CVE List records only; the facts kept for mentioned CVEs have none.
            if wrong := next((k for k in _SSVC_KEYS if k in table), None):
                raise c.fail(f"{path}.{wrong}", "applies to security feeds only (type = \"cvelist\" carries "
                                                "CISA's SSVC); on an RSS route use kev_only, min_severity or min_epss")
    if shorthand:
        feed_filter = _filter(c, {k: v for k, v in t.items() if k in _FILTER_KEYS}, keypath)
        options = _route_options(c, t, keypath, defaults)
        routes += [Route(ch, feed_filter, _updates(c, t, keypath, kind, channels.get(ch)), **options)
                   for ch in shorthand]
    elif any(k in t for k in (*_FILTER_KEYS, "updates")):
        raise c.fail(keypath, "filter keys at feed level apply to `channels`; put them in a [[feeds.routes]] "
                              "table instead, or list the channels with channels = [...]")
    elif wrong := next((k for k in route_options.ROUTE_KEYS if k in t), None):
        raise c.fail(f"{keypath}.{wrong}", "at feed level applies to `channels`; put it in each [[feeds.routes]] "
                                           "table instead, or list the channels with channels = [...]")
    for j, raw_route in enumerate(raw_routes):
        rpath = f"{keypath}.routes[{j}]"
        rt = c.table(raw_route, rpath, ("channel", "updates", *_FILTER_KEYS, *route_options.ROUTE_KEYS))
        channel = c.get(rt, "channel", rpath, str, "")
        if not channel:
            raise c.fail(f"{rpath}.channel", "each route names a channel")
        routes.append(Route(channel, _filter(c, {k: v for k, v in rt.items() if k not in ("channel", "updates")},
                                             rpath), _updates(c, rt, rpath, kind, channels.get(channel)),
                            **_route_options(c, rt, rpath, defaults)))
    if not routes:
        raise c.fail(keypath, f'feed {name!r} goes nowhere: add channels = ["..."] or a [[feeds.routes]] table')
    for j, route in enumerate(routes):
        if route.channel not in channels:
            known = ", ".join(sorted(channels)) or "none defined"
            where = f"{keypath}.channels" if j < len(shorthand) else f"{keypath}.routes[{j - len(shorthand)}].channel"
            raise c.fail(where,
                         f"unknown channel {route.channel!r}; define [channels.{route.channel}] "
                         f"(channels defined: {known})")
    paths = [keypath] * len(shorthand) + [f"{keypath}.routes[{j}]" for j in range(len(raw_routes))]
    if kind != "ghsa":
        for route, path in zip(routes, paths, strict=True):
            if wrong := next((k for k in _PACKAGE_KEYS if getattr(route.filter, k)), None):
                raise c.fail(f"{path}.{wrong}", "applies to GitHub advisory feeds only (type = \"ghsa\"): NVD and "
                                                "KEV records name no packages; use vendors or products")
    routes = route_options.resolve(c, routes, paths, kind, name, channels)
    return Feed(name=name, url=url, kind=kind, interval=interval, backlog=backlog, routes=tuple(routes),
                api_key_env=api_key_env, http=http, token_env=token_env)


def _route_options(c: _Checker, raw: dict[str, Any], keypath: str, defaults: Defaults) -> dict[str, Any]:
    """A route's max_age, own template ("" until resolved against its channel), mentions and time zone."""
    return {"max_age": route_options.max_age(c, raw, keypath, defaults.max_age),
            "template": route_options.template(c, raw, keypath), "mention": route_options.mentions(c, raw, keypath),
            "timezone": route_options.timezone(c, raw, keypath, defaults.timezone),
            "thread": route_options.thread(c, raw, keypath),
            "max_per_poll": route_options.max_per_poll(c, raw, keypath)}


def _defaults(c: _Checker, raw: object) -> Defaults:
    t = c.table(raw, "defaults", tuple(Defaults.__dataclass_fields__))
    d = Defaults()
    values = {
        "interval": c.convert(t, "interval", "defaults", parse_duration, d.interval),
        "backlog": c.get(t, "backlog", "defaults", int, d.backlog),
        "timeout": c.convert(t, "timeout", "defaults", parse_duration, d.timeout),
        "max_body": c.convert(t, "max_body", "defaults", parse_size, d.max_body),
        "max_redirects": c.get(t, "max_redirects", "defaults", int, d.max_redirects),
        "per_host": c.get(t, "per_host", "defaults", int, d.per_host),
        "dedupe_window": c.convert(t, "dedupe_window", "defaults", parse_duration, d.dedupe_window),
        "retention": c.convert(t, "retention", "defaults", parse_duration, d.retention),
        "jitter": c.get(t, "jitter", "defaults", (int, float), d.jitter),
        "max_age": c.convert(t, "max_age", "defaults", parse_duration, d.max_age),
        "timezone": c.convert(t, "timezone", "defaults", parse_zone, d.timezone),
    }
    if values["interval"] < 1:  # checked here too, so the error names the key that was set, not a feed
        raise c.fail("defaults.interval", 'expected at least "1s" (and most publishers ask for minutes)')
    if values["timeout"] <= 0:
        raise c.fail("defaults.timeout", "must be greater than zero")
    for key in ("per_host", "max_body"):
        if values[key] < 1:
            raise c.fail(f"defaults.{key}", "must be at least 1")
    for key in ("backlog", "max_redirects"):
        if values[key] < 0:
            raise c.fail(f"defaults.{key}", "cannot be negative")
    if not 0 <= values["jitter"] <= 1:
        raise c.fail("defaults.jitter", "expected a fraction between 0 and 1")
    return Defaults(**values)


def parse_config(text: str, path: Path | str = "feeds.toml", environ: Mapping[str, str] = os.environ) -> Config:
    """Validate TOML text into a :class:`Config`; raises :class:`ConfigError`."""
    path = Path(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML: nested too deeply") from None
    try:
        return _validate(raw, text, path, environ)
    except (ValueError, TypeError, AttributeError, OverflowError, RecursionError) as exc:
        # Every rule above should have caught bad input with a precise message; never a traceback.
        raise ConfigError(f"{path}: invalid configuration: {exc}") from None


def _validate(raw: dict[str, Any], text: str, path: Path, environ: Mapping[str, str]) -> Config:
    c = _Checker(path, text)
    c.table(raw, "", ("database", "defaults", "slack", "channels", "feeds", "alerts", "metrics", "epss", "cve_lookup"))
    defaults = _defaults(c, raw.get("defaults", {}))
    st = c.table(raw.get("slack", {}), "slack", ("token_env", "api_url"))
    api_url = environ.get("SLACK_API_URL") or c.get(st, "api_url", "slack", str, DEFAULT_SLACK_API_URL)
    if not _valid_url(api_url):
        raise c.fail("slack.api_url", f"expected an http(s) URL such as {DEFAULT_SLACK_API_URL}")
    token_env = _env_name(c, st, "token_env", "slack", DEFAULT_TOKEN_ENV, example=DEFAULT_TOKEN_ENV,
                          holds="the bot token")
    slack = SlackSettings(token_env=token_env,
                          api_url=api_url if api_url.endswith("/") else api_url + "/")
    raw_channels = raw.get("channels", {})
    if not isinstance(raw_channels, dict):
        raise c.fail("channels", "expected [channels.NAME] tables")
    channels = {name: _channel(c, name, value) for name, value in raw_channels.items()}
    raw_feeds = raw.get("feeds", [])
    if not isinstance(raw_feeds, list):
        raise c.fail("feeds", "expected [[feeds]] tables (note the double brackets)")
    feeds = tuple(_feed(c, i, f, defaults, channels) for i, f in enumerate(raw_feeds))
    seen: set[str] = set()
    for i, feed in enumerate(feeds):
        if feed.name in seen:
            raise c.fail(f"feeds[{i}].name", f"duplicate feed name {feed.name!r}; names must be unique")
        seen.add(feed.name)
    database = c.get(raw, "database", "", str, "feedrelay.db")
    if not database.strip() or "\x00" in database:
        raise c.fail("database", "expected a file path such as \"feedrelay.db\"")
    if not Path(database).is_absolute():
        database = str(path.parent / database) if path.parent != Path() else database
    alerts = _alerts(c, raw["alerts"], channels) if "alerts" in raw else None
    metrics = _metrics(c, raw["metrics"]) if "metrics" in raw else None
    epss = _epss(c, raw["epss"]) if "epss" in raw else None
    if epss is None and any(r.filter.epss_bar for f in feeds for r in f.routes):
        epss = Epss()  # a route's EPSS bar needs the scores: FIRST's daily file, checked at the default refresh
    cve_lookup = _cve_lookup(c, raw.get("cve_lookup"), feeds)
    return Config(path=path, defaults=defaults, slack=slack, channels=channels, feeds=feeds, database=database,
                  alerts=alerts, metrics=metrics, epss=epss, cve_lookup=cve_lookup)


def _epss(c: _Checker, raw: object) -> Epss:
    t = c.table(raw, "epss", ("url", "refresh"))
    url = c.get(t, "url", "epss", str, Epss.url).strip()
    if not _valid_url(url):
        raise c.fail("epss.url", f"expected an http(s) URL such as {Epss.url}")
    refresh = c.convert(t, "refresh", "epss", parse_duration, Epss.refresh)
    if refresh < 60:
        raise c.fail("epss.refresh", 'must be at least "1m" (FIRST publishes one file a day; "6h" is the default)')
    return Epss(url=url, refresh=refresh)


def _cve_lookup(c: _Checker, raw: object, feeds: tuple[Feed, ...]) -> CveLookup:
    """Lookups are on where the table is or an NVD feed is configured, and nowhere else: a config that never named
    NVD never calls it (tests and CI have no internet)."""
    nvd = next((f for f in feeds if f.kind == "nvd"), None)
    if raw is None:
        if nvd is None:
            return CveLookup()
        return CveLookup(enabled=True, url=nvd.url, api_key_env=nvd.api_key_env)
    t = c.table(raw, "cve_lookup", ("enabled", "url", "api_key_env", "max_per_poll", "refresh", "retry_unknown"))
    url = c.get(t, "url", "cve_lookup", str, nvd.url if nvd else _NVD_URL).strip()
    if not _valid_url(url):
        raise c.fail("cve_lookup.url", "expected an http(s) URL of the NVD CVE API 2.0, such as "
                                       "https://services.nvd.nist.gov/rest/json/cves/2.0")
    # (the NVD feed's key goes to the NVD feed's endpoint only: another url gets its own api_key_env, or none)
    api_key_env = nvd.api_key_env if nvd and url == nvd.url else ""
    if t.get("api_key_env") != "":
        api_key_env = _env_name(c, t, "api_key_env", "cve_lookup", api_key_env, example="NVD_API_KEY",
                                holds="the API key")
    max_per_poll = c.get(t, "max_per_poll", "cve_lookup", int, CveLookup.max_per_poll)
    if not 0 <= max_per_poll <= 1000:
        raise c.fail("cve_lookup.max_per_poll", "expected 0 to 1000 lookups a poll (NVD allows 5 requests in 30 s "
                                                "without an API key, 50 with one)")
    refresh = c.convert(t, "refresh", "cve_lookup", parse_duration, CveLookup.refresh)
    retry_unknown = c.convert(t, "retry_unknown", "cve_lookup", parse_duration, CveLookup.retry_unknown)
    return CveLookup(enabled=c.get(t, "enabled", "cve_lookup", bool, True) and max_per_poll > 0, url=url,
                     api_key_env=api_key_env, max_per_poll=max_per_poll, refresh=refresh, retry_unknown=retry_unknown)



def _metrics(c: _Checker, raw: object) -> Metrics:
    t = c.table(raw, "metrics", ("listen",))
    listen = c.get(t, "listen", "metrics", str, "").strip()
    host, sep, port = listen.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # [::1]:9464
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise c.fail("metrics.listen", f"expected HOST:PORT such as \"127.0.0.1:9464\" (got {listen!r}); the "
                                       "endpoint has no authentication, so listen on a private address")
    return Metrics(host=host, port=int(port))


def _alerts(c: _Checker, raw: object, channels: Mapping[str, Channel]) -> Alerts:
    t = c.table(raw, "alerts", ("channel", "feed_failing_after", "runbook_url"))
    channel = c.get(t, "channel", "alerts", str, "")
    if channel not in channels:
        defined = ", ".join(sorted(channels)) or "none yet"
        raise c.fail("alerts.channel", f"expected the name of a [channels.NAME] table for the relay's own alerts "
                                       f"(got {channel!r}; defined: {defined})")
    runbook_url = c.get(t, "runbook_url", "alerts", str, "").strip()
    if runbook_url and not _valid_url(runbook_url):
        raise c.fail("alerts.runbook_url", "expected the http(s) URL where docs/runbooks.md is published, e.g. "
                                           "https://github.com/you/feedrelay/blob/main/docs/runbooks.md")
    after = c.convert(t, "feed_failing_after", "alerts", parse_duration, Alerts.feed_failing_after)
    return Alerts(channel=channel, feed_failing_after=after, runbook_url=runbook_url)


def database_of(path: Path | str) -> str:
    """The database a config file names, read as far as the file allows (for `status` while the file is broken:
    the daemon runs on with the configuration it had)."""
    path = Path(path)
    database: object = "feedrelay.db"
    try:
        text = path.read_text(encoding="utf-8-sig")
        database = tomllib.loads(text).get("database", database)
    except (OSError, UnicodeDecodeError, RecursionError):
        pass
    except tomllib.TOMLDecodeError:
        # The error may be anywhere: the key sits at the top, before the first table.
        top = text.split("\n[", 1)[0]
        if m := re.search(r"""^\s*database\s*=\s*(?:"([^"\\]*)"|'([^']*)')\s*(?:#.*)?$""", top, re.M):
            database = m[1] if m[1] is not None else m[2]
    if not isinstance(database, str) or not database.strip() or "\x00" in database:
        database = "feedrelay.db"
    if not Path(database).is_absolute() and path.parent != Path():
        database = str(path.parent / database)
    return database


def load_config(path: Path | str, environ: Mapping[str, str] = os.environ) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # (a BOM, as Notepad may save, is invisible: TOML refuses it)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; pass --config PATH or set FEEDRELAY_CONFIG") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_config(text, path, environ)
