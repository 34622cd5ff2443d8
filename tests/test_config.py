"""feeds.toml validation: every mistake is reported precisely, and `feedrelay check` says so in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from feedrelay.config import ConfigError, format_duration, load_config, parse_config, parse_duration, parse_size
from tests.cli import Relay

CHANNELS = """\
[channels.readings]
slack = "#readings"

[channels.alerts]
webhook_env = "ALERTS_WEBHOOK_URL"
"""

VALID = CHANNELS + """
[[feeds]]
name = "Blog"
url = "https://blog.example.com/rss"
channels = ["readings"]

[[feeds]]
name = "Advisories"
url = "https://example.org/advisories.xml"
interval = "30m"

  [[feeds.routes]]
  channel = "alerts"
  include = ["OpenSSL"]
  include_regex = ['CVE-\\d+-\\d+']
"""

TYPO = CHANNELS + """
[[feeds]]
name = "Blog"
url = "https://blog.example.com/rss"
channels = ["readings"]

[[feeds]]
name = "Other"
url = "https://other.example.com/rss"
intervl = "1h"
channels = ["readings"]
"""
TYPO_LINE = TYPO.splitlines().index('intervl = "1h"') + 1


def error(text: str, path: str = "/etc/feedrelay/feeds.toml", **kw: object) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, path, **kw)  # type: ignore[arg-type]
    return str(info.value)


def feed_toml(extra: str = "", channels: str = '["readings"]', url: str = "https://example.com/rss") -> str:
    return CHANNELS + f'\n[[feeds]]\nname = "F"\nurl = "{url}"\nchannels = {channels}\n{extra}\n'


def test_valid_config() -> None:
    config = parse_config(VALID, "/etc/feedrelay/feeds.toml", environ={})
    assert [f.name for f in config.feeds] == ["Blog", "Advisories"]
    blog, adv = config.feeds
    assert blog.interval == 900 and [r.channel for r in blog.routes] == ["readings"]
    assert adv.interval == 1800
    assert adv.routes[0].filter.include == ("OpenSSL",)
    assert config.channels["readings"].kind == "slack" and config.channels["readings"].target == "#readings"
    assert config.channels["alerts"].kind == "webhook"
    assert config.secret_env_names() == {"SLACK_BOT_TOKEN", "ALERTS_WEBHOOK_URL"}


def test_unknown_key_names_file_path_line_and_suggestion() -> None:
    message = error(TYPO)
    assert message.startswith(f"/etc/feedrelay/feeds.toml:{TYPO_LINE}: ")
    assert "feeds[1].intervl" in message
    assert "'interval'" in message


def test_unknown_key_in_route() -> None:
    text = feed_toml() + '\n[[feeds]]\nname = "G"\nurl = "https://g.example/rss"\n' \
        '[[feeds.routes]]\nchannel = "readings"\n[[feeds.routes]]\nchanel = "alerts"\n'
    message = error(text)
    line = text.splitlines().index('chanel = "alerts"') + 1
    assert f":{line}: " in message and "feeds[1].routes[1].chanel" in message and "'channel'" in message


def test_unknown_top_level_key() -> None:
    message = error('databse = "x.db"\n' + CHANNELS)
    assert "feeds.toml:1: databse" in message and "'database'" in message


@pytest.mark.parametrize("value", ['"5 minutes"', '"15 m s"', '"-5m"', "-1", "true", '"soon"', '""'])
def test_bad_duration(value: str) -> None:
    message = error(feed_toml(f"interval = {value}"))
    assert "feeds[0].interval" in message
    assert "duration" in message


def test_bad_duration_in_defaults_names_the_key() -> None:
    message = error('[defaults]\ntimeout = "forever"\n' + CHANNELS)
    assert "feeds.toml:2: defaults.timeout" in message and "forever" in message


def test_too_short_interval_in_defaults_names_defaults_not_a_feed() -> None:
    # The feed that inherits it has no interval key: pointing there would send the user to the wrong line.
    message = error('[defaults]\ninterval = "0.5s"\n' + feed_toml())
    assert "feeds.toml:2: defaults.interval" in message and 'at least "1s"' in message


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("1w", 604800), ("1.5h", 5400), ("500ms", 0.5),
     (" 10 m ", 600), (300, 300), (2.5, 2.5), ("45", 45), ("1h30m", 5400), ("1d12h", 129600), ("2m 30s", 150)],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(("value", "shown"), [
    ("90m", "1h30m"), ("90s", "1m30s"), ("1h", "1h"), ("45s", "45s"), ("0.5s", "0.5s"), ("2d", "2d"),
    ("36h", "1d12h"), ("1w", "7d"), ("0s", "0s"), ("100ms", "0.1s"), ("0.1h", "6m"), ("90.25s", "1m30.25s")])
def test_format_duration_is_exact(value: str, shown: str) -> None:
    assert format_duration(parse_duration(value)) == shown
    assert parse_duration(shown) == pytest.approx(parse_duration(value))  # what `check` shows can be pasted back


def test_duration_in_config() -> None:
    config = parse_config(feed_toml('interval = "2h"'), environ={})
    assert config.feeds[0].interval == 7200
    config = parse_config(feed_toml("interval = 90"), environ={})
    assert config.feeds[0].interval == 90


@pytest.mark.parametrize(
    ("value", "size"),
    [("10MB", 10_000_000), ("512KiB", 524_288), ("1mib", 1_048_576), ("2 kb", 2000), ("1.5MB", 1_500_000),
     (4096, 4096), ("100", 100), ("1GB", 10**9)],
)
def test_sizes(value: object, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", ["ten MB", "5 XB", "", True, 1.5, "-1MB"])
def test_bad_sizes(value: object) -> None:
    with pytest.raises(ValueError):
        parse_size(value)


def test_sizes_and_durations_in_defaults() -> None:
    text = '[defaults]\nmax_body = "5MB"\ntimeout = "90s"\ninterval = "1h"\ndedupe_window = "7d"\n' + feed_toml()
    config = parse_config(text, environ={})
    d = config.defaults
    assert (d.max_body, d.timeout, d.interval, d.dedupe_window) == (5_000_000, 90, 3600, 7 * 86400)
    assert config.feeds[0].interval == 3600  # feeds inherit the default


def test_bad_size_in_defaults() -> None:
    message = error('[defaults]\nmax_body = "lots"\n' + CHANNELS)
    assert "defaults.max_body" in message and "size" in message


def test_unknown_channel_in_channels_list() -> None:
    message = error(feed_toml(channels='["readings", "general"]'))
    assert "feeds[0].channels" in message
    assert "'general'" in message and "[channels.general]" in message
    assert "alerts" in message and "readings" in message  # what is defined


def test_unknown_channel_in_route() -> None:
    text = CHANNELS + '\n[[feeds]]\nname = "F"\nurl = "https://e.com/rss"\n[[feeds.routes]]\nchannel = "sec"\n'
    message = error(text)
    assert "feeds[0].routes[0]" in message and "'sec'" in message


@pytest.mark.parametrize("key", ["include_regex", "exclude_regex"])
def test_bad_regex_names_the_pattern_key(key: str) -> None:
    message = error(feed_toml(f"{key} = ['fine', '(unclosed']"))
    assert f"feeds[0].{key}[1]" in message
    assert "(unclosed" in message
    assert "regular expression" in message


def test_bad_regex_in_route_names_the_route() -> None:
    text = CHANNELS + '\n[[feeds]]\nname = "F"\nurl = "https://e.com/rss"\n' \
        '[[feeds.routes]]\nchannel = "readings"\nexclude_regex = ["[a-"]\n'
    assert "feeds[0].routes[0].exclude_regex[0]" in error(text)


def test_channel_with_both_slack_and_webhook() -> None:
    message = error('[channels.both]\nslack = "#x"\nwebhook_env = "HOOK"\n')
    assert "channels.both" in message and "exactly one" in message


def test_channel_with_neither() -> None:
    assert "exactly one" in error("[channels.none]\nunfurl = true\n")


@pytest.mark.parametrize("value", ["https://hooks.slack.com/services/T000/B000/XXXX", "hooks.slack.com/x",
                                   "MY HOOK", "1HOOK"])
def test_webhook_env_must_be_a_variable_name(value: str) -> None:
    message = error(f'[channels.alerts]\nwebhook_env = "{value}"\n')
    assert "channels.alerts.webhook_env" in message
    assert "must name an environment variable" in message
    assert value not in message  # a webhook URL is a secret: never echoed into logs


@pytest.mark.parametrize("value", ["https://hooks.slack.com/services/T000/B000/XXXXSECRET", "xoxb-1-2-XXXXSECRET"])
def test_slack_target_that_is_a_webhook_url_or_token_is_refused_without_echoing_it(value: str) -> None:
    # `status`, the log and alerts name a channel's target: a secret pasted here would be shown everywhere.
    message = error(f'[channels.readings]\nslack = "{value}"\n')
    assert "feeds.toml:2: channels.readings.slack" in message and "webhook_env" in message
    assert "XXXXSECRET" not in message


def test_slack_target_that_is_a_channel_link_suggests_its_id() -> None:
    message = error('[channels.readings]\nslack = "https://acme.slack.com/archives/C0123ABCD"\n')
    assert "channels.readings.slack" in message and 'slack = "C0123ABCD"' in message


def test_channel_error_points_at_the_channel_table_not_a_feeds_channels_key() -> None:
    # No [channels] header of its own: the line must still be the one in [channels.alerts], not a feed's
    # `channels = [...]` further down.
    text = feed_toml().replace('webhook_env = "ALERTS_WEBHOOK_URL"', 'webhook_env = "not a name"')
    line = text.splitlines().index('webhook_env = "not a name"') + 1
    assert f"/etc/feedrelay/feeds.toml:{line}: channels.alerts.webhook_env:" in error(text)
    text = feed_toml().replace('slack = "#readings"', "slack = ''")
    line = text.splitlines().index("slack = ''") + 1
    assert f"/etc/feedrelay/feeds.toml:{line}: channels.readings.slack:" in error(text)


@pytest.mark.parametrize("value", ["xoxb-1234567890-abcdef", "MY TOKEN", "1TOKEN", ""])
def test_token_env_must_be_a_variable_name(value: str) -> None:
    message = error(f'[slack]\ntoken_env = "{value}"\n' + CHANNELS)
    assert "/etc/feedrelay/feeds.toml:2: slack.token_env: must name an environment variable" in message
    assert "not hold the bot token itself" in message
    assert not value or value not in message


@pytest.mark.parametrize("value", ["0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0", "NVD KEY"])
def test_api_key_env_must_be_a_variable_name(value: str) -> None:
    message = error(feed_toml(f'type = "nvd"\napi_key_env = "{value}"'))
    assert "feeds[0].api_key_env: must name an environment variable (like NVD_API_KEY)" in message
    assert value not in message


def test_secret_env_names_accepted() -> None:
    config = parse_config('[slack]\ntoken_env = "TEAM_SLACK_TOKEN"\n' + feed_toml('type = "nvd"\napi_key_env = '
                                                                                 '"NVD_KEY_2"'))
    assert config.slack.token_env == "TEAM_SLACK_TOKEN"
    assert config.feeds[0].api_key_env == "NVD_KEY_2"
    # An empty api_key_env has always meant "no key", like leaving it out.
    assert parse_config(feed_toml('type = "nvd"\napi_key_env = ""')).feeds[0].api_key_env == ""


# --- per-feed HTTP options: headers, basic auth, user_agent ------------------------------------------------------


def test_feed_http_options_accepted() -> None:
    config = parse_config(feed_toml('headers = { "X-Service-Token" = { env = "SVC_TOKEN" }, Accept-Language = '
                                    '{ env = "LANG_HEADER" } }\nauth = { username_env = "FEED_USER", password_env = '
                                    '"FEED_PASSWORD" }\nuser_agent = "Mozilla/5.0 (compatible; ExampleBot/1.0)"'))
    http = config.feeds[0].http
    assert http.headers == (("X-Service-Token", "SVC_TOKEN"), ("Accept-Language", "LANG_HEADER"))
    assert (http.username_env, http.password_env) == ("FEED_USER", "FEED_PASSWORD")
    assert http.user_agent == "Mozilla/5.0 (compatible; ExampleBot/1.0)"
    assert {"SVC_TOKEN", "LANG_HEADER", "FEED_USER", "FEED_PASSWORD"} <= config.secret_env_names()
    env = {"SVC_TOKEN": "tok-123456\n", "FEED_USER": "reader", "FEED_PASSWORD": "pw-123456", "LANG_HEADER": "en"}
    secrets = config.secrets(env)
    # The values as sent, and the Basic token a library's log line would show instead of the password.
    assert {"tok-123456", "reader", "pw-123456", "cmVhZGVyOnB3LTEyMzQ1Ng=="} <= set(secrets)
    # The same headers as a sub-table, and a feed without any: no options.
    sub = parse_config(feed_toml('[feeds.headers]\n"X-Token" = { env = "T" }')).feeds[0].http
    assert sub.headers == (("X-Token", "T"),)
    assert parse_config(feed_toml()).feeds[0].http.env_names() == ()


PASTED = "s3cret-CANARY-9f8e7d"


@pytest.mark.parametrize(("extra", "key", "says"), [
    (f'headers = {{ "X-Service-Token" = "{PASTED}" }}', "feeds[0].headers.X-Service-Token",
     "header values come only from environment variables, since config files get committed"),
    (f'[feeds.headers]\nX-Token = "{PASTED}"', "feeds[0].headers.X-Token",
     "header values come only from environment variables"),
    (f'headers = {{ X-Token = {{ env = "{PASTED}" }} }}', "feeds[0].headers.X-Token.env",
     "must name an environment variable (like SVC_TOKEN), not hold the header value itself"),
    (f'headers = {{ X-Token = {{ value = "{PASTED}" }} }}', "feeds[0].headers.X-Token.value",
     "unknown key; valid keys here: env"),
    (f'auth = "reader:{PASTED}"', "feeds[0].auth", 'expected auth = { username_env = "FEED_USER"'),
    (f'auth = {{ username_env = "U", password_env = "{PASTED}" }}', "feeds[0].auth.password_env",
     "not hold the password itself"),
    ('auth = { username_env = "U" }', "feeds[0].auth", "give both username_env and password_env"),
    ('auth = { username = "bob", password_env = "P" }', "feeds[0].auth.username", "did you mean 'username_env'?"),
    ('headers = { User-Agent = { env = "UA" } }', "feeds[0].headers.User-Agent", 'set user_agent = "..."'),
    ('headers = { host = { env = "H" } }', "feeds[0].headers.host", "sets this header itself"),
    ('headers = { If-None-Match = { env = "H" } }', "feeds[0].headers.If-None-Match", "sets this header itself"),
    ('headers = { "X Token" = { env = "T" } }', "feeds[0].headers", "'X Token' is not a valid HTTP header name"),
    ('headers = { X-A = { env = "A" }, x-a = { env = "B" } }', "feeds[0].headers.x-a", "given twice"),
    ('auth = { username_env = "U", password_env = "P" }\nheaders = { Authorization = { env = "T" } }',
     "feeds[0].headers.Authorization", "either auth"),
    ('headers = ["X-Token"]', "feeds[0].headers", "expected a table such as headers = {"),
    ('user_agent = ""', "feeds[0].user_agent", "expected one line"),
    ('user_agent = "Bot\\r\\nX-Injected: 1"', "feeds[0].user_agent", "expected one line"),
    ("user_agent = 5", "feeds[0].user_agent", "expected a string"),
])
def test_feed_http_option_errors_name_the_line_and_never_quote_a_value(extra: str, key: str, says: str) -> None:
    text = feed_toml(extra)
    message = error(text)
    bad = text.splitlines().index(extra.split("\n")[-1]) + 1  # the line of the key at fault
    assert message.startswith(f"/etc/feedrelay/feeds.toml:{bad}: {key}: "), message
    assert says in message, message
    assert PASTED not in message


def test_duplicate_feed_names() -> None:
    text = feed_toml() + '\n[[feeds]]\nname = "F"\nurl = "https://other.example/rss"\nchannels = ["readings"]\n'
    message = error(text)
    second = [n for n, line in enumerate(text.splitlines(), 1) if line == "[[feeds]]"][1]
    assert "feeds[1].name" in message and "duplicate" in message and "'F'" in message
    assert f"feeds.toml:{second + 1}:" in message  # the second feed's name line


@pytest.mark.parametrize("url", ["ftp://example.com/feed", "file:///etc/passwd", "example.com/rss",
                                 "javascript:alert(1)", "http:///nohost"])
def test_non_http_url(url: str) -> None:
    message = error(feed_toml(url=url))
    assert "feeds[0].url" in message and "http://" in message


def test_feed_without_destination() -> None:
    message = error(CHANNELS + '\n[[feeds]]\nname = "Lonely"\nurl = "https://e.com/rss"\n')
    assert "feeds[0]" in message and "goes nowhere" in message


def test_invalid_toml_shows_line() -> None:
    text = CHANNELS + '\n[[feeds]]\nname = "F"\nurl = https://unquoted.example\n'
    line = text.splitlines().index("url = https://unquoted.example") + 1
    message = error(text)
    assert message.startswith("/etc/feedrelay/feeds.toml: not valid TOML")
    assert f"line {line}" in message


def test_single_brackets_for_feeds_explained() -> None:
    message = error(CHANNELS + '\n[feeds]\nname = "F"\n')
    assert "feeds" in message and "[[feeds]]" in message


def test_slack_api_url_env_override() -> None:
    config = parse_config(feed_toml(), environ={"SLACK_API_URL": "http://127.0.0.1:8080/api"})
    assert config.slack.api_url == "http://127.0.0.1:8080/api/"
    assert parse_config(feed_toml(), environ={}).slack.api_url == "https://slack.com/api/"
    text = '[slack]\napi_url = "http://localhost:9/api/"\n' + feed_toml()
    assert parse_config(text, environ={}).slack.api_url == "http://localhost:9/api/"
    assert parse_config(text, environ={"SLACK_API_URL": "http://override/api/"}).slack.api_url == \
        "http://override/api/"


def test_slack_api_url_env_override_must_be_http() -> None:
    assert "slack.api_url" in error(feed_toml(), environ={"SLACK_API_URL": "file:///tmp/sock"})


def test_database_relative_to_config_dir(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "feeds.toml"
    path.parent.mkdir()
    path.write_text('database = "state/relay.db"\n' + feed_toml())
    config = load_config(path, environ={})
    assert Path(config.database) == tmp_path / "conf" / "state" / "relay.db"


def test_database_default_beside_config(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(feed_toml())
    assert Path(load_config(path, environ={}).database) == tmp_path / "feedrelay.db"


def test_database_absolute_kept(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text('database = "/var/lib/feedrelay/x.db"\n' + feed_toml())
    assert load_config(path, environ={}).database == "/var/lib/feedrelay/x.db"


def test_load_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml")


def test_load_config_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_bytes(b'[channels.r]\nslack = "#caf\xe9"\n')
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(path)


def test_load_config_error_names_the_real_file(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(TYPO)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(info.value).startswith(f"{path}:{TYPO_LINE}: feeds[1].intervl")


def test_filter_keys_validated() -> None:
    assert "feeds[0].min_severity" in error(feed_toml('min_severity = "severe"'))
    assert "feeds[0].min_score" in error(feed_toml("min_score = 11"))
    assert "feeds[0].fields" in error(feed_toml('fields = ["body"]'))
    assert "feeds[0].include" in error(feed_toml('include = ["ok", ""]'))


def test_cwe_ids_written_otherwise_are_an_error_not_a_silent_route() -> None:
    # cwes = ["79"] would match no CVE: the route would never post, and nothing would say why.
    assert error(feed_toml('type = "nvd"\ncwes = ["CWE-89", "79"]')).endswith(
        'feeds[0].cwes[1]: expected a CWE ID such as "CWE-79", not \'79\'')
    assert "feeds[0].cwes[0]" in error(feed_toml('type = "nvd"\ncwes = ["CWE79"]'))
    config = parse_config(feed_toml('type = "nvd"\ncwes = ["cwe-79", "CWE-1321"]'), "/f.toml", environ={})
    assert config.feeds[0].routes[0].filter.cwes == ("CWE-79", "CWE-1321")


# --- the CLI, as a user runs it -----------------------------------------------------------------


def run_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "feedrelay", "-c", str(path), "check"], capture_output=True,
                          text=True, timeout=60, cwd=path.parent)


def test_cli_check_reports_typo_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(TYPO)
    result = run_check(path)
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("feedrelay: error: ")
    assert f"{path}:{TYPO_LINE}: feeds[1].intervl" in lines[0]
    assert "'interval'" in lines[0]


def test_cli_check_reports_invalid_toml_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text("[[feeds]\n")
    result = run_check(path)
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("feedrelay: error: ")


SECRET = "xoxb-1234567890-abcdef"


@pytest.mark.parametrize("key", ["slack.token_env", "channels.hook.webhook_env", "feeds[0].api_key_env"])
def test_cli_a_pasted_secret_is_refused_without_being_printed(tmp_path: Path, key: str) -> None:
    relay = Relay(tmp_path, None, token=None)
    relay.configure(
        channels={"hook": {"webhook_env": SECRET if key.startswith("channels") else "TEAM_HOOK"}},
        feeds=[{"name": "NVD", "type": "nvd", "channels": ["hook"],
                **({"api_key_env": SECRET} if key.startswith("feeds") else {})}])
    if key.startswith("slack"):
        relay.config.write_text(f'[slack]\ntoken_env = "{SECRET}"\n' + relay.config.read_text())
    lines = relay.config.read_text().splitlines()
    line = next(n for n, text in enumerate(lines, 1) if SECRET in text)
    for command in ("check", "run"):  # `run` used to log the value at every start
        result = relay(command, timeout=30)
        assert result.code == 2, result.output
        assert result.out == ""
        assert result.err.count("\n") == 1 and "Traceback" not in result.err, result.err
        assert result.err.startswith(f"feedrelay: error: {relay.config}:{line}: {key}: must name an environment "
                                     "variable"), result.err
        assert SECRET not in result.output and "1234567890" not in result.output


def test_cli_check_shows_intervals_exactly(tmp_path: Path) -> None:
    relay = Relay(tmp_path, None)
    intervals = {"A": "90m", "B": "90s", "C": "1h", "D": "45s", "E": "1.5s", "F": "2d"}
    relay.configure(feeds=[{"name": n, "url": f"https://e.com/{n}", "interval": i, "channels": ["readings"]}
                           for n, i in intervals.items()],
                    alerts={"channel": "readings", "feed_failing_after": "90m"})
    result = relay("check")
    assert result.code == 0, result.output
    shown = {"A": "1h30m", "B": "1m30s", "C": "1h", "D": "45s", "E": "1.5s", "F": "2d"}
    for name, every in shown.items():
        assert f"  {name} [rss] every {every} → readings\n" in result.out  # never rounded ("90m" is not "2h")
    assert "  alerts → readings (a feed failing for 1h30m," in result.out


def test_cli_check_notes_only_the_variables_the_config_needs(tmp_path: Path) -> None:
    # The README's webhook setup needs no bot token: `check` must not send the user looking for one.
    relay = Relay(tmp_path, None, token=None)
    relay.configure(feeds=[{"name": "A", "url": "https://e.com/a", "channels": ["team"]}],
                    channels={"team": {"webhook_env": "TEAM_HOOK"}, "scratch": {"console": True}})
    result = relay("check")
    assert result.code == 0, result.output
    assert "  note: $TEAM_HOOK is not set" in result.err
    assert "SLACK_BOT_TOKEN" not in result.output
    relay.configure(feeds=[{"name": "A", "url": "https://e.com/a", "channels": ["readings"]}])
    assert "  note: $SLACK_BOT_TOKEN is not set" in relay("check").err


def test_config_saved_with_a_byte_order_mark_loads_and_takes_imported_feeds(tmp_path: Path) -> None:
    # Windows editors (Notepad) may save UTF-8 with a BOM: an invisible character that TOML itself refuses,
    # reported as "Invalid statement (at line 1, column 1)" on a line that looks fine.
    relay = Relay(tmp_path, None)
    relay.config.write_bytes(b"\xef\xbb\xbf" + VALID.encode())
    result = relay("check")
    assert result.code == 0, result.output
    assert "ok — 2 feed(s)" in result.out
    opml = tmp_path / "list.opml"
    opml.write_text('<opml version="2.0"><body><outline text="New" xmlUrl="https://new.example.com/feed"/></body></opml>')
    imported = relay("import-opml", str(opml), "--channel", "readings")
    assert imported.code == 0, imported.output
    assert "ok — 3 feed(s)" in relay("check").out


def test_cli_check_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(VALID)
    result = run_check(path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "ok" in result.stdout and "2 feed(s)" in result.stdout


@pytest.mark.parametrize("routes", ["1", '"security"', "{ channel = \"readings\" }"])
def test_routes_that_are_not_tables_are_a_config_error(routes: str) -> None:
    """Found by hypothesis: `routes = 1` on an RSS feed was a TypeError traceback from `check`, and a live edit
    saying so escaped the daemon's reload."""
    text = f'[channels.readings]\nconsole = true\n[[feeds]]\nname = "Blog"\nurl = "https://example.com/feed"\n' \
           f"routes = {routes}\n"
    with pytest.raises(ConfigError, match=r"feeds\[0\]\.routes: expected \[\[feeds\.routes\]\] tables"):
        parse_config(text)
