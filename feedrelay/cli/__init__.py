"""The `feedrelay` command: a thin face on the library."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click

from feedrelay.cli.logs import LOG_FORMATS, JSONFormatter, Redactor, json_logs, setup_logging
from feedrelay.config import Config, ConfigError, Feed, format_duration, load_config

__all__ = ["JSONFormatter", "Redactor", "cli", "main", "setup_logging"]

log = logging.getLogger("feedrelay")


def fail(message: str, code: int = 2) -> None:
    if json_logs():
        log.error("%s", message)  # (a log shipper reads stderr: the reason a service stopped must parse too)
    else:
        click.echo(f"feedrelay: error: {message}", err=True)
    sys.exit(code)


def report(message: str, level: int = logging.INFO) -> None:
    """A line of `once`'s report on stderr: a JSON log record under --log-format json."""
    if json_logs():
        log.log(level, "%s", message)
    else:
        click.echo(message, err=True)


class State:
    def __init__(self, config_path: str, db: str | None, verbose: int, log_format: str = "text") -> None:
        self.config_path = config_path
        self.db = db
        self.verbose = verbose
        self.log_format = log_format

    def setup_logging(self, secrets: list[str]) -> None:
        setup_logging(self.verbose, secrets, self.log_format)

    def config(self) -> Config:
        try:
            config = load_config(self.config_path)
        except ConfigError as exc:
            fail(str(exc))
            raise  # unreachable: fail() exits
        self.setup_logging(config.secrets())
        return config

    def require_slack(self, config: Config) -> None:
        """--require-slack: a missing token or webhook URL stops the start; nothing goes to the terminal."""
        if missing := config.missing_delivery_env():
            fail("; ".join(missing) + f" (--require-slack or {REQUIRE_SLACK_ENV} is set). Set the variable, "
                 "or leave --require-slack off to try feedrelay without Slack.")

    def db_path(self, config: Config | None) -> str:
        return self.db or (config.database if config else "feedrelay.db")


pass_state = click.make_pass_decorator(State)


def _db_errors() -> tuple[type[Exception], ...]:
    """What a database failure raises. Imported when one happens (an `except` evaluates it only then): the
    store pulls in sqlite-utils, which `--help`, `check` and shell completion do not need."""
    from feedrelay.store import DB_ERRORS

    return DB_ERRORS


def describe(exc: Exception, db: str) -> str:
    from feedrelay.store import describe

    return describe(exc, db)


CONFIG_PATH = click.Path(dir_okay=False, path_type=str)
DB_PATH = click.Path(dir_okay=False, path_type=str)
META_CONFIG, META_DB = "feedrelay.config", "feedrelay.db"


def _after_command(key: str, attribute: str) -> Any:
    """`feedrelay run -c FILE` as well as `feedrelay -c FILE run`: the value given after the command wins."""

    def store(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
        if value is None:
            return
        ctx.meta[key] = value  # (for shell completion, where the group's callback does not run)
        if isinstance(ctx.obj, State):
            setattr(ctx.obj, attribute, value)

    return store


def path_options(f: Any) -> Any:
    """-c/--config and --db on a command, so they work after its name as well as before it."""
    f = click.option("--db", type=DB_PATH, expose_value=False, callback=_after_command(META_DB, "db"),
                     help="SQLite database file (as before the command; FEEDRELAY_DB).")(f)
    return click.option("-c", "--config", type=CONFIG_PATH, expose_value=False,
                        callback=_after_command(META_CONFIG, "config_path"),
                        help="The feeds.toml to use (as before the command; FEEDRELAY_CONFIG).")(f)


def _completion_config(ctx: click.Context) -> Config | None:
    """The config the command line names, for completing feed and channel names; None if it does not load."""
    root = ctx.find_root()
    path = ctx.meta.get(META_CONFIG) or root.params.get("config_path") or os.environ.get("FEEDRELAY_CONFIG")
    try:
        return load_config(path or "feeds.toml")
    except (ConfigError, OSError, ValueError):
        return None  # completion offers nothing rather than an error in the middle of a command line


def complete_feeds(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    from click.shell_completion import CompletionItem

    config = _completion_config(ctx)
    return [CompletionItem(f.name, help=f"{f.kind} feed") for f in (config.feeds if config else ())
            if f.name.casefold().startswith(incomplete.casefold())]


def complete_channels(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    from click.shell_completion import CompletionItem

    config = _completion_config(ctx)
    return [CompletionItem(name, help=ch.target or ch.kind) for name, ch in (config.channels.items() if config else ())
            if name.casefold().startswith(incomplete.casefold())]

REQUIRE_SLACK_ENV = "FEEDRELAY_REQUIRE_SLACK"
# Without credentials a channel prints to the terminal and its messages count as delivered: right for trying
# feedrelay out, silent loss in production (a variable dropped from a unit file or `docker run`).
require_slack_option = click.option(
    "--require-slack", is_flag=True, envvar=REQUIRE_SLACK_ENV, show_envvar=True,
    help="Refuse to start, and refuse config edits, while a channel's Slack token or webhook variable is unset, "
         "instead of printing its messages to the terminal. For production.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-c", "--config", "config_path", type=CONFIG_PATH, default="feeds.toml", envvar="FEEDRELAY_CONFIG",
              show_default=True, show_envvar=True, help="The feeds.toml to use (also accepted after the command).")
@click.option("--db", type=DB_PATH, envvar="FEEDRELAY_DB", show_envvar=True,
              help="SQLite database file (default: `database` in the config, else feedrelay.db beside it). Also "
                   "accepted after the command.")
@click.option("-v", "--verbose", count=True, help="-v: debug logs (filter decisions); -vv: libraries too.")
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default="text", envvar="FEEDRELAY_LOG_FORMAT",
              show_default=True, show_envvar=True,
              help="json: one JSON object per line (time, level, logger, message, exception), for log shippers.")
@click.version_option(package_name="feedrelay", prog_name="feedrelay")
@click.pass_context
def cli(ctx: click.Context, config_path: str, db: str | None, verbose: int, log_format: str) -> None:
    """Relay RSS/Atom/JSON feeds, NVD CVEs and CISA KEV into Slack channels: filtered, once each, never lost.

    Shell completion (commands, options, feed and channel names): see "Shell completion" in the README, e.g.
    eval "$(_FEEDRELAY_COMPLETE=bash_source feedrelay)" in ~/.bashrc.
    """
    from feedrelay.cli.credentials import CredentialError, apply_credentials

    ctx.obj = State(config_path, db, verbose, log_format)
    setup_logging(verbose, [], log_format)
    try:
        # Before the config is read: its secrets (and their redaction) may come from systemd credentials.
        notes = apply_credentials(os.environ)
    except CredentialError as exc:
        fail(str(exc))
    for note in notes:
        log.warning("%s", note)


def _run(coro: Any, db: str) -> Any:
    try:
        return asyncio.run(coro)
    except _db_errors() as exc:
        fail(describe(exc, db), 1)


@cli.command(short_help="Run the daemon: poll and deliver until stopped.",
             epilog=("Exit status: 0 when stopped (Ctrl-C, SIGTERM); 1 if the database cannot be used or another "
                     "feedrelay uses it; 2 if the config or the command line is wrong."))
@path_options
@require_slack_option
@pass_state
def run(state: State, require_slack: bool) -> None:
    """Run the daemon: poll every feed at its interval and deliver, until Ctrl-C or SIGTERM.

    Edits to the config file are picked up while it runs (a bad edit is reported and ignored).
    """
    from feedrelay.runtime.daemon import Daemon
    from feedrelay.runtime.relay import Relay

    config = state.config()
    if require_slack:
        state.require_slack(config)

    async def main() -> None:
        # Until Daemon.run installs its handlers, asyncio.run turns Ctrl-C into a cancel that lands after the first
        # polls have started and strands them (a traceback, an "internal error"): note a stop asked for meanwhile.
        early_stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, early_stop.set)
        async with Relay(config, state.db_path(config), require_slack=require_slack) as relay:
            daemon = Daemon(relay, on_config=lambda c: state.setup_logging(c.secrets()))
            if early_stop.is_set():
                log.info("stopped while starting, before the first poll")
                return
            await daemon.run()
            if daemon.fatal:
                fail(daemon.fatal, 1)

    _run(main(), state.db_path(config))


@cli.command(short_help="Poll every feed once, deliver, exit (for cron).",
             epilog=("Exit status: 0 when every feed was polled and every message delivered; 1 if a feed failed, a"
                     " message is still queued or the database cannot be used; 2 if the config or the command line"
                     " is wrong."))
@path_options
@click.option("--max-wait", default="120s", show_default=True,
              help="How long to keep retrying deliveries (rate limits, outages) before giving up for this run.")
@require_slack_option
@pass_state
def once(state: State, max_wait: str, require_slack: bool) -> None:
    """Poll every feed once, deliver what is new, and exit.

    Exit status is 1 if any feed failed or any message could not be delivered (it stays queued).
    """
    from feedrelay.config import parse_duration
    from feedrelay.runtime.relay import Relay

    config = state.config()
    if require_slack:
        state.require_slack(config)
    try:
        wait = parse_duration(max_wait)
    except ValueError as exc:
        fail(f"--max-wait: {exc}")

    async def main() -> int:
        async with Relay(config, state.db_path(config)) as relay:
            feeds = await relay.poll_all()
            channels = await relay.drain(wait)
            relay.prune()
        bad = 0
        for r in feeds:
            if r.skipped:
                report(f"feed {r.feed!r}: skipped, the server asked us to wait (Retry-After)")
            if r.error:
                bad += 1
                report(f"feed {r.feed!r}: {r.error}", logging.ERROR)
        for name, c in channels.items():
            for error in c.errors:
                report(f"channel {name!r}: {error}", logging.ERROR)
            if not c.ok:
                bad += 1
        new = sum(r.new for r in feeds)
        sent = sum(c.sent for c in channels.values())
        pending = sum(c.pending for c in channels.values())
        report(f"polled {len(feeds)} feed(s): {new} new item(s), {sent} message(s) delivered, "
               f"{pending} still queued, {sum(1 for r in feeds if r.error)} feed error(s)")
        return 1 if bad else 0

    sys.exit(_run(main(), state.db_path(config)))


@cli.command(short_help="Validate the config file.",
             epilog=("Exit status: 0 when the config is valid; 2 when it is not (or, with --require-slack, a "
                     "channel's variable is unset)."))
@path_options
@require_slack_option
@pass_state
def check(state: State, require_slack: bool) -> None:
    """Validate the config file; exit 2 with a precise message if it is wrong."""
    config = state.config()
    if require_slack:
        state.require_slack(config)
    # What the channels post with and the feeds' API keys and tokens: a bot token no channel uses is not missing.
    needed = set(config.delivery_env()) | {v for f in config.feeds for v in (f.api_key_env, f.token_env) if v}
    missing = sorted(n for n in needed if not os.environ.get(n, "").strip())
    # A feed's header values and basic auth are not optional, as an NVD key or a GitHub token is: its polls fail
    # without them.
    fetch_env = {var: feeds for var, feeds in config.feed_env().items() if var not in needed}
    click.echo(f"{config.path}: ok — {len(config.feeds)} feed(s), {len(config.channels)} channel(s)")
    for feed in config.feeds:
        routes = ", ".join(r.channel for r in feed.routes)
        click.echo(f"  {feed.name} [{feed.kind}] every {format_duration(feed.interval)} → {routes}")
    if alerts := config.alerts:
        after = format_duration(alerts.feed_failing_after)
        click.echo(f"  alerts → {alerts.channel} (a feed failing for {after}, a channel Slack refuses)")
    if m := config.metrics:
        from feedrelay.runtime.metrics import url

        click.echo(f"  metrics → {url(m.host, m.port)} (while `feedrelay run` runs)")
    for name in missing:
        click.echo(f"  note: ${name} is not set", err=True)
    for name, feeds in sorted(fetch_env.items()):
        if not os.environ.get(name, "").strip():
            click.echo(f"  note: ${name} is not set: feed(s) {', '.join(map(repr, feeds))} fail until it is", err=True)



@cli.command("import-opml", short_help="Subscribe to the feeds an OPML file lists.",
             epilog=("Exit status: 0 when the feeds were added (or there was nothing to add, or --dry-run); 1 if "
                     "the config file cannot be written; 2 if the OPML file, a --channel or the config is wrong."))
@path_options
@click.argument("file", type=click.File("rb"))
@click.option("--channel", "channels", multiple=True, required=True, metavar="NAME", shell_complete=complete_channels,
              help="A channel from the config for every imported feed (repeat for several).")
@click.option("--interval", default="", help="Poll interval for these feeds, e.g. 1h (default: [defaults] interval).")
@click.option("--dry-run", is_flag=True, help="Print the [[feeds]] tables instead of adding them to the config.")
@pass_state
def import_opml(state: State, file: Any, channels: tuple[str, ...], interval: str, dry_run: bool) -> None:
    """Subscribe to the feeds an OPML file lists (a feed reader's export, a published list of blogs).

    Appends a [[feeds]] table per new feed to the config file, skipping URLs it already polls; a running
    daemon picks them up. Each new feed's first poll remembers what it lists and posts nothing (backlog 0).
    FILE may be - for standard input.
    """
    from feedrelay.config import parse_config, parse_duration
    from feedrelay.config.opml import MAX_OPML, OPMLError, feeds_toml, plan_import, read_opml

    config = state.config()
    if unknown := [c for c in channels if c not in config.channels]:
        fail(f"--channel {unknown[0]!r}: no such channel in {config.path} "
             f"(channels: {', '.join(sorted(config.channels)) or 'none'}); add a [channels.{unknown[0]}] table first")
    if interval:
        try:
            parse_duration(interval)
        except ValueError as exc:
            fail(f"--interval: {exc}")
    name = getattr(file, "name", "-")
    try:
        subscriptions, unusable = read_opml(file.read(MAX_OPML + 1))
    except OPMLError as exc:
        fail(f"{name}: {exc}")
    except OSError as exc:
        fail(f"{name}: cannot read: {exc.strerror}")
    plan = plan_import(config, subscriptions)
    text = config.path.read_text(encoding="utf-8-sig")  # as load_config reads it
    addition = feeds_toml(plan.added, channels, interval, source=Path(name).name)
    combined = text + ("" if text.endswith("\n") else "\n") + "\n" + addition
    if plan.added:
        try:
            parse_config(combined, config.path)
        except ConfigError as exc:
            fail(f"the config with these feeds added would not load, so nothing was written: {exc}")
    if dry_run:
        click.echo(addition if plan.added else "# nothing to add", nl=False)
    for sub, existing in plan.subscribed:
        click.echo(f"  = {sub.name or sub.url}: already polled as {existing!r}", err=True)
    for title in unusable:
        click.echo(f"  ! {title}: no http(s) feed URL, skipped", err=True)
    if dry_run or not plan.added:
        click.echo(f"{len(plan.added)} feed(s) to add, {len(plan.subscribed)} already polled, "
                   f"{len(unusable)} without a usable URL{' (dry run: nothing written)' if dry_run else ''}", err=True)
        return
    _replace(config.path, combined)
    for sub in plan.added:
        click.echo(f"  + {sub.name} <{sub.url}>")
    click.echo(f"{config.path}: added {len(plan.added)} feed(s) → {', '.join(channels)}; {len(plan.subscribed)} "
               f"already polled, {len(unusable)} without a usable URL. A running daemon picks them up; check with "
               "`feedrelay check`.")


def _replace(path: Path, text: str) -> None:
    """Write the whole file at once (a daemon reloading it never reads half), keeping its permissions."""
    import shutil
    import tempfile

    target = path.resolve()  # a symlinked config (dotfiles, a ConfigMap) is written where it points
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        shutil.copymode(target, tmp)
        os.replace(tmp, target)
    except OSError as exc:
        if "tmp" in locals():
            Path(tmp).unlink(missing_ok=True)
        fail(f"{path}: cannot write: {exc.strerror}; use --dry-run and add the output to the file yourself", 1)


@cli.command("export-opml", short_help="Print the configured feeds as OPML.",
             epilog=("Exit status: 0 on success; 2 if the config is wrong."))
@path_options
@pass_state
def export_opml(state: State) -> None:
    """Print the configured RSS/Atom/JSON feeds as an OPML file, for a feed reader or another feedrelay."""
    from feedrelay.config.opml import write_opml

    sys.stdout.buffer.write(write_opml(state.config()))


@cli.command(short_help="Show what a feed would post where, now.",
             epilog=("Exit status: 0 when the feed was fetched and shown; 1 if the fetch failed or the database "
                     "cannot be read; 2 if TARGET is not a feed of the config nor a URL, or the config or the "
                     "command line is wrong."))
@path_options
@click.argument("target", shell_complete=complete_feeds)
# At least 1: the limit slices the item list, where -1 would mean "all but the last".
@click.option("-n", "--limit", default=20, show_default=True, type=click.IntRange(min=1),
              help="Show at most this many items.")
@pass_state
def preview(state: State, target: str, limit: int) -> None:
    """Fetch a feed now and show what would be posted where, and which rule decided. Posts nothing.

    TARGET is a feed name from the config, or any URL.
    """
    from feedrelay.runtime.preview import FeedNotFound
    from feedrelay.runtime.preview import preview as preview_feed
    from feedrelay.sources import SourceError

    config: Config | None = None
    if Path(state.config_path).exists() or not target.startswith(("http://", "https://")):
        config = state.config()
    db = state.db_path(config)
    try:
        shown = asyncio.run(preview_feed(target, config, db, limit=limit, environ=os.environ))
    except FeedNotFound as exc:
        fail(str(exc))
    except SourceError as exc:
        fail(f"feed {target!r}: {exc}", 1)
    except _db_errors() as exc:
        fail(describe(exc, db), 1)
    feed = shown.feed
    click.echo(f"{feed.name}: {len(shown.entries)} item(s) shown, newest first\n")
    if shown.first_poll and shown.entries:
        posted = "none of them" if feed.backlog == 0 else f"only the newest {feed.backlog}"
        click.echo(f"not polled yet: its first poll remembers these entries and posts {posted} (backlog = "
                   f"{feed.backlog}); entries published after it are posted as their filters decide\n")
    if shown.configured:
        _show_routes(feed)
    for entry in shown.entries:
        item = entry.item
        seen = "" if entry.seen is None else (" (already seen)" if entry.seen else " (new)")
        date = item.published.strftime("%Y-%m-%d %H:%M") if item.published else "no date"
        click.echo(f"• {item.title or '(untitled)'}{seen}\n  {date}  {item.link or '(no link)'}")
        for v in entry.verdicts:
            click.echo(f"  {v.action} → {v.channel}: {v.reason}")
        click.echo()


def _show_routes(feed: Feed) -> None:
    """What each route posts beside its filter: the template, the age limit, the mentions, the delivery mode."""
    from feedrelay.render.template import describe

    for r in feed.routes:
        shown = [f"template {describe(r.template)}"]
        if r.max_age:
            shown.append(f"max_age {format_duration(r.max_age)}")
        if r.mention:
            shown.append(f"mention {' '.join(r.mention)}")
        if r.max_per_poll:
            shown.append(f"max_per_poll {r.max_per_poll} (the rest as one \"N more\" message)")
        if r.thread == "daily":
            shown.append(f"daily thread ({r.timezone})")
        click.echo(f"route → {r.channel}: {', '.join(shown)}")
    click.echo()


@cli.command(short_help="Show each feed's and channel's state.",
             epilog=("Exit status: 0 when shown (also before the first poll, and with a warning while the config "
                     "is broken); 1 if the database cannot be read, or there is neither a database nor a config."))
@path_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_state
def status(state: State, as_json: bool) -> None:
    """Per feed: last poll, last error, items remembered, deliveries pending or failed. Safe while running."""
    from feedrelay.config import database_of
    from feedrelay.runtime.status import ago, read_status

    config: Config | None = None
    db = state.db
    if Path(state.config_path).exists():
        try:
            config = load_config(state.config_path)
        except ConfigError as exc:
            # Someone is likely fixing a bad edit, which a running daemon ignores: show what it is doing meanwhile.
            click.echo(f"feedrelay: warning: {exc}\n  (a running daemon keeps its previous configuration; below is "
                       "what the database holds)", err=True)
            db = db or database_of(state.config_path)
    db = db or state.db_path(config)
    try:
        report = read_status(db, config)
    except _db_errors() as exc:
        fail(describe(exc, db), 1)
    for note in report.notes:
        click.echo(f"feedrelay: {note}", err=True)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    now = time.time()
    click.echo(f"{'FEED':<28} {'LAST POLL':>10} {'ITEMS':>6} {'PENDING':>7} {'FAILED':>6}  STATE")
    for f in report.feeds:
        click.echo(f"{f.feed[:28]:<28} {ago(f.last_poll, now):>10} {f.items:>6} {f.pending:>7} {f.failed:>6}  "
                   f"{f.state}")
    for f in report.feeds:
        if f.held:
            click.echo(f"  {f.feed}: {f.held} unscored CVE(s) on hold, waiting for a score (the oldest since "
                       f"{ago(f.held_since, now)}; include_unscored = \"after …\")")
    if e := report.epss:
        click.echo(f"{'EPSS':<28} {ago(e.checked, now):>10} {e.rows:>6} {'':>7} {'':>6}  {e.state(now)}")
        if e.candidates:
            click.echo(f"  EPSS: {e.candidates} CVE(s) below a route's EPSS bar, posted if a new score passes it")
    if report.channels:
        click.echo(f"\n{'CHANNEL':<28} {'SENT':>6} {'PENDING':>7} {'FAILED':>6}  STATE")
        for name, c in sorted(report.channels.items()):
            click.echo(f"{name[:28]:<28} {c.sent:>6} {c.pending:>7} {c.failed:>6}  {c.state(now)}")
    if report.needs_attention:
        from feedrelay.runtime.alerts import RUNBOOKS

        click.echo(f"\nWhat to do: {RUNBOOKS} (a feed keeps failing, a channel is failing, rejected messages)")


@cli.command(short_help="Tell whether the running daemon is alive.",
             epilog="Exit status: 0 when `feedrelay run` is alive and answering; 1 when it is not; 2 if the command "
                    "line is wrong.")
@path_options
@click.option("--max-age", default="60s", show_default=True,
              help="Unhealthy when the daemon's last sign of life is older than this.")
@pass_state
def health(state: State, max_age: str) -> None:
    """Exit 0 if `feedrelay run` is alive and its event loop answers, else 1: for Docker's HEALTHCHECK or a monitor.

    Needs no network and no [metrics]: it reads the heartbeat `run` keeps beside its database.
    """
    from feedrelay.config import database_of, parse_duration
    from feedrelay.runtime.health import check as check_health

    try:
        limit = parse_duration(max_age)
    except ValueError as exc:
        fail(f"--max-age: {exc}")
    # The database as `status` finds it: a config with a bad edit (which the daemon ignores) is no reason to fail.
    result = check_health(state.db or database_of(state.config_path), limit)
    click.echo(result.message if result.ok else f"feedrelay: unhealthy: {result.message}", err=not result.ok)
    sys.exit(0 if result.ok else 1)


@cli.command(short_help="Queue the messages Slack rejected again.",
             epilog=("Exit status: 0 when done; 1 if there is no database, no message for CHANNEL, or the database"
                     " cannot be used; 2 if the config or the command line is wrong."))
@path_options
@click.argument("channel", required=False, shell_complete=complete_channels)
@pass_state
def retry(state: State, channel: str | None) -> None:
    """Queue messages Slack rejected (status FAILED) again, for all channels or one."""
    from feedrelay.delivery.outbox import Outbox
    from feedrelay.store import Store

    config = state.config() if Path(state.config_path).exists() else None
    db = state.db_path(config)
    if not Path(db).exists():
        fail(f"{db}: no such database; check --db or the config's `database`", 1)
    try:
        store = Store(db)
        outbox = Outbox(store)
        known = set(outbox.channel_stats())
        if channel and channel not in known:
            fail(f"no messages for channel {channel!r} in {db} (channels: {', '.join(sorted(known)) or 'none'})", 1)
        n = outbox.retry_failed(channel)
        store.close()
    except _db_errors() as exc:
        fail(describe(exc, db), 1)
    click.echo(f"{n} rejected message(s) queued again; failing channels will be retried at once")


def main() -> None:
    cli(prog_name="feedrelay")
