"""Arbitrary and malformed feeds.toml: the result is a Config or a ConfigError, never another exception.

The bulk calls `parse_config` / `load_config` directly (fast); a handful go through `feedrelay check`
(exit 2, one `feedrelay: error:` line, no Traceback); and a running daemon is fed a series of bad files.
"""

from __future__ import annotations

import math
import signal
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from feedrelay.config import Config, ConfigError, load_config, parse_config
from tests.cli import Relay, wait_until
from tests.feedgen import make_items, rss
from tests.servers import FakeSlack, FeedServer

EXAMPLE = (Path(__file__).parent.parent / "feeds.toml").read_text()
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ENV: dict[str, str] = {}  # parse as if no SLACK_API_URL were set

# Inputs found while writing this suite that escape as non-ConfigError exceptions (see the report).
DEEP_ARRAY = "a = " + "[" * 3000 + "]" * 3000 + "\n"
DEEP_TABLE = "a = " + "{b = " * 3000 + "1" + "}" * 3000 + "\n"
HUGE_SIZE = '[defaults]\nmax_body = "' + "9" * 400 + '"\n'
NESTED_REGEX = ('[channels.r]\nslack = "#r"\n[[feeds]]\nname = "x"\nurl = "http://e.com/"\nchannels = ["r"]\n'
                'include_regex = ["' + "(" * 3000 + ")" * 3000 + '"]\n')


def config_or_config_error(text: str) -> Config | None:
    try:
        return parse_config(text, "feeds.toml", environ=ENV)
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith("feeds.toml"), message  # always names the file
        return None


# --- 1. random text and bytes ------------------------------------------------------------------------


@FUZZ
@given(st.text())
def test_random_text(text: str) -> None:
    config_or_config_error(text)


def rejection(text: str) -> str:
    """The ConfigError message for ``text``, which must be refused."""
    with pytest.raises(ConfigError) as info:
        parse_config(text, "feeds.toml", environ=ENV)
    return str(info.value)


@pytest.mark.parametrize(("name", "text", "says"), [
    ("deeply nested array", DEEP_ARRAY, "feeds.toml: not valid TOML: nested too deeply"),
    ("deeply nested inline table", DEEP_TABLE, "feeds.toml: not valid TOML: nested too deeply"),
    ("size too large to represent", HUGE_SIZE, "feeds.toml:2: defaults.max_body: a size must be between"),
    ("deeply nested regex group", NESTED_REGEX, "feeds.toml:7: feeds[0].include_regex[0]: regular expression nested "
                                                "too deeply"),
])
def test_hard_inputs_give_a_config_error(name: str, text: str, says: str) -> None:
    """Kept out of the @given tests: an explicit example that fails stops Hypothesis from exploring."""
    assert rejection(text).startswith(says)


@FUZZ
@given(st.binary(max_size=2000))
@example(b"\xff\xfe[[feeds]]\n")
@example(b"[channels.r]\nslack = \"#\xe9\"\n")
@example(b"\x00" * 10)
def test_random_bytes_from_a_file(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "feeds.toml"
        path.write_bytes(data)
        try:
            load_config(path, environ=ENV)
        except ConfigError as exc:
            assert str(exc).startswith(str(path))


# --- 2. random TOML from random tables, keys and values -----------------------------------------------

KEYS = ["database", "defaults", "slack", "channels", "feeds", "name", "url", "type", "interval", "backlog", "channel",
        "routes", "api_key_env", "include", "exclude", "include_regex", "exclude_regex", "fields", "min_severity",
        "min_score", "include_unscored", "vendors", "products", "cwes", "kev_only", "webhook_env", "console",
        "unfurl", "min_interval", "timeout", "max_body", "max_redirects", "per_host", "dedupe_window", "retention",
        "jitter", "token_env", "api_url"]
TRICKY_STRINGS = [
    "", " ", "15m", "0s", "-1s", "1.5h", "90", "1e9d", "99999999999999d", "nan", "inf", "10MB", "512KiB", "0",
    "9" * 400, "1.5GB", "http://example.com/feed", "https://e.com:99999/", "http://[::1/", "ftp://e.com/",
    "javascript:alert(1)", "http://", "#readings", "C0123", "readings", "rss", "nvd", "kev", "critical", "HIGH",
    "title", "summary", "content", "(", "a{99999999999999999999}", "(?P<x>", "[[", "\x00", "é", "🎉",
    "SLACK_BOT_TOKEN", "1-BAD", "feeds.toml", "/tmp/x.db", "a\x00b",
]
scalars = st.one_of(
    st.sampled_from(TRICKY_STRINGS), st.text(max_size=20),
    st.integers(), st.integers(-3, 1000), st.floats(), st.booleans(),
    st.dates(), st.datetimes(), st.times(),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8),
                                                                        inner, max_size=5)), max_leaves=20)


def _key(key: str) -> str:
    return key if key and all(c.isalnum() or c in "-_" for c in key) and key.isascii() else _string(key)


def _string(s: str) -> str:
    out = []
    for c in s:
        if c in '"\\' or ord(c) < 0x20 or ord(c) == 0x7F:
            out.append("\\" + c if c in '"\\' else f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _inline(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, list):
        return "[" + ", ".join(_inline(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_inline(x)}" for k, x in v.items()) + "}"
    return v.isoformat()  # date, datetime, time: TOML literals


def to_toml(doc: dict[str, Any]) -> str:
    """Top-level tables as [headers] (their sub-tables as [a.b]) and arrays of tables as [[headers]], as
    people write them; everything else inline."""

    def table_array(v: Any) -> bool:
        return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)

    lines = [f"{_key(k)} = {_inline(v)}" for k, v in doc.items() if not isinstance(v, dict) and not table_array(v)]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines.append(f"[{_key(k)}]")
            lines += [f"{_key(a)} = {_inline(b)}" for a, b in v.items() if not isinstance(b, dict)]
            for a, b in v.items():
                if isinstance(b, dict):
                    lines.append(f"[{_key(k)}.{_key(a)}]")
                    lines += [f"{_key(x)} = {_inline(y)}" for x, y in b.items()]
        elif table_array(v):
            for table in v:
                lines.append(f"[[{_key(k)}]]")
                lines += [f"{_key(a)} = {_inline(b)}" for a, b in table.items() if not table_array(b)]
                for a, b in table.items():
                    if table_array(b):
                        for sub in b:
                            lines.append(f"[[{_key(k)}.{_key(a)}]]")
                            lines += [f"{_key(x)} = {_inline(y)}" for x, y in sub.items()]
    return "\n".join(lines) + "\n"


def _valid_toml(doc: dict[str, Any]) -> str | None:
    import tomllib

    text = to_toml(doc)
    try:
        tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError):
        return None  # our writer cannot express this document (e.g. a table redefined); skip it
    return text


@pytest.mark.e2e  # (150 whole documents: the slow tier)
@FUZZ
@given(st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), values, max_size=6))
def test_random_toml_documents(doc: dict[str, Any]) -> None:
    text = _valid_toml(doc)
    if text is not None:
        config_or_config_error(text)


# Mostly-valid configs with random perturbations: these get past the first checks into the deep ones.
channel_tables = st.fixed_dictionaries(
    {}, optional={"slack": st.sampled_from(["#readings", "C0123", ""]) | scalars,
                  "webhook_env": st.sampled_from(["HOOK", "1-BAD", "A_B"]) | scalars,
                  "console": st.booleans() | scalars, "unfurl": st.booleans() | scalars,
                  "min_interval": st.sampled_from(["0s", "1s", "-1s", "9999999999999d"]) | scalars})
filter_keys = {"include": st.lists(st.sampled_from(TRICKY_STRINGS), max_size=3) | scalars,
               "exclude": st.lists(st.text(max_size=10), max_size=3) | scalars,
               "include_regex": st.lists(st.sampled_from(["(?i)cve", "(", "a{99999999999999999999}", "x" * 50,
                                                          "(" * 3000 + ")" * 3000]), max_size=2) | scalars,
               "fields": st.lists(st.sampled_from(["title", "summary", "content", "bogus"]), max_size=3) | scalars,
               "min_severity": st.sampled_from(["low", "critical", "HIGH", "extreme"]) | scalars,
               "min_score": st.floats() | st.integers(-5, 15) | scalars,
               "kev_only": st.booleans() | scalars}
route_tables = st.fixed_dictionaries({"channel": st.sampled_from(["readings", "security", "nope"]) | scalars},
                                     optional=filter_keys)
feed_tables = st.fixed_dictionaries(
    {"name": st.sampled_from(["Blog", "NVD", "Blog", ""]) | scalars,
     "url": st.sampled_from(["http://example.com/feed", "https://e.com:99999/", "http://[::1/", "https://e.com:0/",
                             "ftp://e.com/", "http://e.com:65535/x"]) | scalars},
    optional={"type": st.sampled_from(["rss", "nvd", "kev", "atom"]) | scalars,
              "interval": st.sampled_from(["15m", "0.5s", "1s", "99999999999999d", "1000000000d"]) | scalars,
              "backlog": st.integers(-2, 5) | scalars,
              "channels": st.lists(st.sampled_from(["readings", "security", "nope"]), max_size=2) | scalars,
              "channel": st.sampled_from(["readings", "nope"]) | scalars,
              "routes": st.lists(route_tables, max_size=2) | scalars,
              "api_key_env": st.sampled_from(["NVD_API_KEY", ""]) | scalars, **filter_keys})
configs = st.fixed_dictionaries(
    {"channels": st.dictionaries(st.sampled_from(["readings", "security", "a.b", "x y"]), channel_tables, max_size=3),
     "feeds": st.lists(feed_tables, max_size=3)},
    optional={"database": st.sampled_from(["feedrelay.db", "/tmp/x.db", "", "a\x00b.db"]) | scalars,
              "defaults": st.fixed_dictionaries({}, optional={
                  "interval": st.sampled_from(["15m", "0s", "99999999999999d"]) | scalars,
                  "timeout": st.sampled_from(["30s", "0s", "999999999999d"]) | scalars,
                  "max_body": st.sampled_from(["10MB", "0", "9" * 400, "1.5KiB", "1 GB"]) | scalars,
                  "max_redirects": st.integers(-1, 10) | scalars, "per_host": st.integers(-1, 10) | scalars,
                  "jitter": st.floats() | scalars, "backlog": st.integers(-1, 5) | scalars,
                  "dedupe_window": st.sampled_from(["30d", "-1d"]) | scalars}),
              "slack": st.fixed_dictionaries({}, optional={"token_env": scalars,
                                                           "api_url": st.sampled_from(["https://slack.com/api",
                                                                                       "ftp://x"]) | scalars})})


@FUZZ
@given(configs)
@example({"channels": {"r": {"slack": "#r"}}, "feeds": [{"name": "x", "url": "http://e.com/", "channels": ["r"],
                                                          "include_regex": ["(?i)cve-\\d+"], "backlog": 2}]})
def test_structured_configs(doc: dict[str, Any]) -> None:
    text = _valid_toml(doc)
    if text is not None:
        config_or_config_error(text)


# --- 3. mutations of the example feeds.toml -----------------------------------------------------------


@st.composite
def mutated_example(draw: st.DrawFn) -> str:
    text = EXAMPLE
    for _ in range(draw(st.integers(1, 4))):
        lines = text.splitlines(keepends=True)
        op = draw(st.sampled_from(["delete", "duplicate", "insert", "replace", "truncate", "swap", "retype"]))
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        if op == "delete" and lines:
            del lines[i]
        elif op == "duplicate" and lines:
            lines.insert(i, lines[i])
        elif op == "swap" and len(lines) > 1:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "retype" and lines and "=" in lines[i]:
            key = lines[i].split("=", 1)[0]
            lines[i] = f"{key}= {_inline(draw(scalars))}\n"
        text = "".join(lines)
        if op == "insert":
            pos = draw(st.integers(0, len(text)))
            text = text[:pos] + draw(st.text(max_size=10) | st.sampled_from(["[", "]", '"', "=", "\n[[feeds]]\n",
                                                                              "[channels.readings]\n"])) + text[pos:]
        elif op == "replace":
            pos = draw(st.integers(0, max(0, len(text) - 1)))
            text = text[:pos] + draw(st.characters()) + text[pos + 1:]
        elif op == "truncate":
            text = text[: draw(st.integers(0, len(text)))]
    return text


def test_the_example_itself_is_valid() -> None:
    assert config_or_config_error(EXAMPLE) is not None


@FUZZ
@given(mutated_example())
def test_mutated_example(text: str) -> None:
    config_or_config_error(text)


# --- 4. what `check` accepts, `run` can use -------------------------------------------------------------


def _usable(config: Config) -> None:
    """A config that validates must not fail later for a reason validation could have seen."""
    from apscheduler.triggers.interval import IntervalTrigger

    assert "\x00" not in config.database, "database path with a NUL byte"
    for feed in config.feeds:
        parts = urlsplit(feed.url)
        assert parts.hostname, feed.url
        _ = parts.port  # ValueError for ports outside 0-65535
        IntervalTrigger(seconds=feed.interval)  # what the daemon schedules
        timedelta(seconds=feed.interval * (1 + config.defaults.jitter))


@FUZZ
@given(configs)
def test_accepted_configs_are_usable(doc: dict[str, Any]) -> None:
    text = _valid_toml(doc)
    config = config_or_config_error(text) if text is not None else None
    if config is not None:
        _usable(config)


BASE = '[channels.r]\nslack = "#r"\n\n[[feeds]]\nname = "x"\nchannels = ["r"]\n'


@pytest.mark.parametrize(("name", "text", "says"), [
    ("port out of range", BASE + 'url = "http://example.com:99999/feed"\n', "feeds.toml:7: feeds[0].url: expected"),
    ("malformed IPv6 host", BASE + 'url = "http://[::1/feed"\n', "feeds.toml:7: feeds[0].url: expected"),
    ("NUL in the database path", 'database = "a\\u0000b.db"\n' + BASE + 'url = "http://example.com/"\n',
     "feeds.toml:1: database: expected a file path"),
    ("interval beyond the scheduler", BASE + 'url = "http://example.com/"\ninterval = "100000000d"\n',
     "feeds.toml:8: feeds[0].interval: a duration must be between"),
])
def test_config_check_rejects_what_run_cannot_use(name: str, text: str, says: str) -> None:
    # Each of these once passed `check` and then crashed `run` (a port, a host, a path, a timer it cannot use).
    assert rejection(text).startswith(says)


# --- 5. through the CLI: `check` ----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "data"), [
    ("not TOML", b"[channels.readings\nslack = 1\n"),
    ("not UTF-8", b"\xff\xfe[[feeds]]\nname = 'x'\n"),
    ("binary garbage", bytes(range(256))),
    ("wrong type", b"[defaults]\ninterval = true\n"),
    ("unknown channel", BASE.encode() + b'url = "http://example.com/"\nchannels = ["nope"]\n'),
    ("deeply nested array", DEEP_ARRAY.encode()),
    ("size too large to represent", HUGE_SIZE.encode()),
    ("deeply nested regex", NESTED_REGEX.encode()),
])
def test_check_reports_one_clear_line(tmp_path: Path, name: str, data: bytes) -> None:
    relay = Relay(tmp_path, api_url=None, token=None)
    relay.config.write_bytes(data)
    result = relay("check")
    assert "Traceback" not in result.output, result.output
    assert result.code == 2, result.output
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("feedrelay: error: "), result.err
    assert str(relay.config) in lines[0]


# --- 6. a running daemon and a series of bad edits ------------------------------------------------------


def test_daemon_survives_a_series_of_bad_edits_and_keeps_relaying(tmp_path: Path, feed_server: FeedServer,
                                                                  fake_slack: FakeSlack) -> None:
    """Unlike the TOML typo in test_e2e_relay.py: bytes that are not UTF-8, a semantic error, a document
    deep enough to exhaust a recursive parser, a deleted file. Each is reported and ignored, and the
    previous configuration goes on polling and posting in between."""
    relay = Relay(tmp_path, fake_slack.api_url)
    feed_server.set("/a.xml", rss(make_items(1)))
    feed_server.set("/b.xml", rss([{**i, "link": i["link"].replace("/posts/", "/b/")}  # links unlike A's
                                   for i in make_items(2, prefix="B")]))
    feed_a = {"name": "A", "url": feed_server.url("/a.xml"), "channels": ["readings"], "interval": "1s"}
    channels = {"readings": {"slack": "#readings", "min_interval": "0s"}}
    relay.configure(feeds=[feed_a], channels=channels)
    good = relay.config.read_text()
    bad_edits = [
        ("not UTF-8", lambda: relay.config.write_bytes(b"\xff\xfe" + good.encode())),
        ("unknown channel", lambda: relay.config.write_text(good.replace('channels = ["readings"]',
                                                                         'channels = ["nope"]'))),
        ("deeply nested", lambda: relay.config.write_text(good + DEEP_ARRAY)),
        ("deleted", lambda: relay.config.unlink()),
    ]
    daemon = relay.start()
    reported: dict[str, bool] = {}
    try:
        wait_until(lambda: feed_server.hits("/a.xml") >= 1, timeout=20)
        for i, (name, edit) in enumerate(bad_edits):
            ignored_before = daemon.log().count("config change ignored")
            edit()
            daemon.proc.send_signal(signal.SIGHUP)
            try:
                wait_until(lambda n=ignored_before: daemon.log().count("config change ignored") > n, timeout=20)
                reported[name] = True
            except AssertionError:
                reported[name] = False
            assert daemon.proc.poll() is None, f"the daemon stopped after a bad edit ({name})"
            # The previous configuration still polls and posts.
            feed_server.set("/a.xml", rss(make_items(1, start=i + 1) + make_items(i + 1)))
            fake_slack.wait_for_posts(i + 1, timeout=15)
        relay.configure(feeds=[feed_a, {"name": "B", "url": feed_server.url("/b.xml"), "channels": ["readings"],
                                        "backlog": 1, "interval": "1h"}], channels=channels)
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: any("B 1" in (p.text or "") for p in fake_slack.posts), timeout=20)
    finally:
        result = daemon.stop()
    assert result.code == 0, result.err
    assert [p.text.split(" — ")[0] for p in fake_slack.posts] == ["Post 1", "Post 2", "Post 3", "Post 4", "B 1"]
    assert reported == {name: True for name, _ in bad_edits}, f"bad edits not reported as ignored: {reported}"
    assert "Traceback" not in result.err, result.err
