"""The parent message of a daily thread (``thread = "daily"``): "<feed>: <date>", the day's posts below it."""

from __future__ import annotations

from feedrelay.model import Item
from feedrelay.render.message import Message
from feedrelay.render.mrkdwn import TITLE_LIMIT, escape, fit, section


def render_day(item: Item) -> Message:
    # The feed's name comes from feeds.toml, but an OPML import may have taken it from a feed's own title: escaped.
    title = fit(item.title, TITLE_LIMIT)
    return Message(text=title, blocks=[section(f"*{escape(title)}*  ·  today's posts are in the thread")])
