"""Alerts about the relay itself: a feed that has been failing for a while, a channel Slack refuses, and
their recoveries. Each alert names what broke, the error, and the runbook section that says what to do.

Pure decisions and messages; the pipeline and the deliverer queue the result in the outbox like any other
message, so alerts survive restarts and Slack outages too. One alert per incident: an incident is named by
when it began (a feed's ``error_since``, a channel's ``failing_since``), and the outbox's duplicate guard
drops a second alert with the same name.
"""

from __future__ import annotations

from typing import Any

from feedrelay.config import Alerts
from feedrelay.model import Delivery
from feedrelay.render.message import Message
from feedrelay.render.mrkdwn import fit, link, section

RUNBOOKS = "docs/runbooks.md"
# Sections of RUNBOOKS, as GitHub anchors its headings (a test checks each one exists).
FEED_FAILING = "a-feed-keeps-failing"
CHANNEL_FAILING = "a-channel-is-failing"
CONFIG_REJECTED = "an-edit-to-feedstoml-was-not-applied"
ALERTS_FEED = "(feedrelay)"  # the outbox's feed column for the relay's own messages


def runbook(alerts: Alerts, anchor: str) -> str:
    """A Slack link to a runbook section, or its file path when no URL is configured."""
    if alerts.runbook_url:
        return link(f"{alerts.runbook_url.split('#')[0]}#{anchor}", f"Runbook: {anchor.replace('-', ' ')}")
    return f"Runbook: `{RUNBOOKS}#{anchor}` in the feedrelay repository"


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{hours // 24}d {hours % 24}h" if hours % 24 else f"{hours // 24}d"


def feed_incident(feed: str, since: float) -> str:
    return f"alert:feed:{feed}:{since!r}"


def channel_incident(channel: str, since: float) -> str:
    return f"alert:channel:{channel}:{since!r}"


def _message(text: str, lines: list[str]) -> dict[str, Any]:
    return Message(text, [section("\n".join(lines))]).to_json()


def _delivery(alerts: Alerts, key: str, message: dict[str, Any]) -> Delivery:
    return Delivery(alerts.channel, ALERTS_FEED, key, key, message)


def feed_failing(alerts: Alerts, feed: str, error: str, *, since: float, attempts: int, now: float,
                 hint: str = "") -> Delivery | None:
    """An alert once a feed has been failing for ``feed_failing_after``; None before (a blip is not news).
    ``hint``: what to do, for a source that is not a feed (EPSS), in place of the feed's."""
    if now - since < alerts.feed_failing_after:
        return None
    name = fit(feed, 150)
    polls = "1 failed poll" if attempts == 1 else f"{attempts} failed polls in a row"
    heading = f":warning: Feed *{name}* has been failing for {duration(now - since)} ({polls})"
    lines = [heading, f"Last error: {fit(error, 500)}",
             (hint or f"It is retried at its interval; `feedrelay preview \"{name}\"` shows what the feed returns "
                       "now.") + " " + runbook(alerts, FEED_FAILING)]
    return _delivery(alerts, feed_incident(feed, since),
                     _message(f"feedrelay: feed {name} has been failing for {duration(now - since)}", lines))


def feed_recovered(alerts: Alerts, feed: str, *, since: float, now: float) -> Delivery:
    name = fit(feed, 150)
    text = f":white_check_mark: Feed *{name}* works again, after failing for {duration(now - since)}."
    return _delivery(alerts, feed_incident(feed, since) + ":ok", _message(f"feedrelay: feed {name} works again",
                                                                         [text]))


def channel_failing(alerts: Alerts, channel: str, target: str, error: str, *, since: float) -> Delivery | None:
    """An alert for a channel that Slack refuses; None when that channel is the alerts channel itself."""
    if channel == alerts.channel:
        return None
    name = fit(channel, 100)
    lines = [f":rotating_light: Cannot post to channel *{name}* ({fit(target, 200)}): {fit(error, 500)}",
             "Its messages are kept and retried every 5 minutes; `feedrelay retry "
             f"{name}` retries at once after the fix. " + runbook(alerts, CHANNEL_FAILING)]
    return _delivery(alerts, channel_incident(channel, since),
                     _message(f"feedrelay: cannot post to channel {name}", lines))


def channel_recovered(alerts: Alerts, channel: str, *, since: float, now: float) -> Delivery:
    name = fit(channel, 100)
    text = (f":white_check_mark: Channel *{name}* takes messages again, after failing for {duration(now - since)}; "
            "its queued messages are being delivered in order.")
    return _delivery(alerts, channel_incident(channel, since) + ":ok",
                     _message(f"feedrelay: channel {name} works again", [text]))



def config_rejected(alerts: Alerts, file: str, *, mtime: float) -> Delivery:
    """A live edit of the configuration that could not be applied. The error itself stays in the log and in
    `feedrelay check`: a config file may hold a pasted secret by mistake, and an error can quote its line."""
    name = fit(file, 200)
    lines = [f":warning: An edit to `{name}` was not applied: the file has an error, so feedrelay keeps running "
             "the previous configuration.",
             "`feedrelay check` shows the error with its line and key. "
             + runbook(alerts, CONFIG_REJECTED)]
    return _delivery(alerts, f"alert:config:{file}:{mtime!r}", _message(f"feedrelay: an edit to {name} was not applied",
                                                                       lines))
