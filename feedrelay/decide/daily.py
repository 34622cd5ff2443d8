"""Daily threads (``thread = "daily"``): the first post of a route's day is preceded by a parent message
"<feed>: <date>", and the day's posts go as replies under it. Pure: the pipeline hands in which days already
have a parent in each channel (stories) and stores the parents this returns.

A day's parent is a story like a CVE's ("day<TAB>feed<TAB>date"): the outbox records its ts when Slack accepts
it, so a restart mid-day keeps replying under the same parent. A CVE posted under it keeps its own story: its
follow-ups reply to its message, which Slack places in the same day thread.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import replace
from datetime import UTC, date, datetime

from feedrelay.config import Feed, Route
from feedrelay.config.durations import zone
from feedrelay.decide.lifecycle import StoryWrite
from feedrelay.model import Intent, Item

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DAY_KIND = "day"  # the Item kind of a day's parent message (render/daily.py draws it)


def local_day(route: Route, now: float) -> date:
    return datetime.fromtimestamp(now, UTC).astimezone(zone(route.timezone)).date()


def day_story(feed: str, day: date) -> str:
    return f"day\t{feed}\t{day.isoformat()}"


def days(feed: Feed, now: float) -> set[tuple[str, str]]:
    """(channel, story) of today's parent for each daily-threaded route of the feed: what to look up."""
    return {(r.channel, day_story(feed.name, local_day(r, now))) for r in feed.routes if r.thread == "daily"}


def parent_item(feed: str, day: date) -> Item:
    # "Wed 2 Dec 2026", in English whatever the process's locale (strftime's %a and %b follow LC_TIME).
    label = f"{_DAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]} {day.year}"
    return Item(key=day_story(feed, day), title=f"{feed}: {label}", link="", kind=DAY_KIND,
                extra={"day": day.isoformat(), "feed": feed})


def thread_daily(feed: Feed, intents: Iterable[Intent], started: Collection[tuple[str, str]], now: float
                 ) -> tuple[list[Intent], list[StoryWrite]]:
    """The intents with each new post of a daily-threaded route placed under its day's parent, and the parent
    posts (with their story writes) for days that have none yet in the channel (``started``: (channel, story)
    pairs that do). Replies and edits of a story stay as they are: they follow their own message."""
    routes: dict[str, Route] = {}
    for r in feed.routes:
        if r.thread == "daily":
            routes.setdefault(r.channel, r)
    out: list[Intent] = []
    writes: list[StoryWrite] = []
    opened = set(started)
    for intent in intents:
        route = routes.get(intent.channel)
        if route is None or intent.action != "post" or intent.thread:
            out.append(intent)
            continue
        day = local_day(route, now)
        story = day_story(feed.name, day)
        if (intent.channel, story) not in opened:
            opened.add((intent.channel, story))
            out.append(Intent(intent.channel, feed.name, parent_item(feed.name, day), "post", story))
            writes.append(StoryWrite(intent.channel, story, {"day": day.isoformat()}, new=True))
        out.append(replace(intent, thread=story))
    return out, writes
