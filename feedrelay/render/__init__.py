"""The render stage: what a message looks like, as a pure function of data.

The decider says *that* an item goes to a channel (an :class:`~feedrelay.model.Intent`); this stage says
*what* the channel gets: the Block Kit blocks, the notification text and the terminal text, stored together in
the outbox's :class:`~feedrelay.model.Delivery`.
"""

from __future__ import annotations

from collections.abc import Iterable

from feedrelay.model import SECURITY_KINDS, Delivery, Intent, Item
from feedrelay.render.changes import render_change, story_label
from feedrelay.render.daily import render_day
from feedrelay.render.message import Message
from feedrelay.render.overflow import render_overflow
from feedrelay.render.posts import render_post
from feedrelay.render.security import render_security
from feedrelay.render.template import render_compact, render_custom, with_mentions

__all__ = ["Message", "deliveries", "render"]


def render(item: Item, feed_name: str, template: str = "full", mention: tuple[str, ...] = ()) -> Message:
    """The message for a relayed item (a post, a CVE or a KEV addition) in the route's template, with its
    mentions."""
    if item.kind == "day":  # a daily thread's parent (feedrelay.decide.daily)
        return render_day(item)
    if item.kind == "overflow":  # a capped route's "N more from <feed>" (feedrelay.decide.caps)
        return with_mentions(render_overflow(item), mention)
    if template == "compact":
        message = render_compact(item, feed_name)
    elif template != "full":
        message = render_custom(item, feed_name, template)
    elif item.kind in SECURITY_KINDS:
        message = render_security(item, feed_name)
    else:
        message = render_post(item, feed_name)
    return with_mentions(message, mention)


def deliveries(intents: Iterable[Intent]) -> list[Delivery]:
    """Each intent as the outbox row that carries its message. An item sent to several channels is rendered once
    per template and mentions: two routes that show it differently get different messages. A change (a reply, or
    a post in place of one) shows what changed; an update, the item as it now is."""
    out: list[Delivery] = []
    rendered: dict[tuple[str, str, str, tuple[str, ...], str, tuple[str, ...]], dict] = {}
    for intent in intents:
        item = intent.item
        cache = (intent.feed, item.key, intent.action, intent.changes, intent.template, intent.mention)
        message = rendered.get(cache) if intent.action == "post" else None  # (an update's badge is per channel)
        if message is None:
            if intent.changes:
                message = render_change(item, intent.feed, intent.changes, in_thread=intent.action == "reply").to_json()
            else:
                message = render(item, intent.feed, intent.template, intent.mention).to_json()
            rendered[cache] = message
        if intent.thread:
            message = {**message, "thread": intent.thread}
        if intent.action != "post" or intent.changes:
            message = {**message, "parent": story_label(item), "changes": list(intent.changes)}
            if intent.broadcast:
                message["broadcast"] = True
        out.append(Delivery(intent.channel, intent.feed, item.key, item.dedupe_key, message, item.legacy_dedupe_key,
                            intent.action, intent.story))
    return out
