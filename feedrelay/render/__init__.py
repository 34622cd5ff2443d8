"""The render stage: what a message looks like, as a pure function of data.

The decider says *that* an item goes to a channel (an :class:`~feedrelay.model.Intent`); this stage says
*what* the channel gets: the Block Kit blocks, the notification text and the terminal text, stored together in
the outbox's :class:`~feedrelay.model.Delivery`.
"""

from __future__ import annotations

from collections.abc import Iterable

from feedrelay.model import Delivery, Intent, Item
from feedrelay.render.message import Message
from feedrelay.render.posts import render_post
from feedrelay.render.security import render_security

__all__ = ["Message", "deliveries", "render"]


def render(item: Item, feed_name: str) -> Message:
    """The message for a relayed item: a post, a CVE or a KEV addition."""
    if item.kind in ("cve", "kev"):
        return render_security(item, feed_name)
    return render_post(item, feed_name)


def deliveries(intents: Iterable[Intent]) -> list[Delivery]:
    """Each intent as the outbox row that carries its message; an item sent to several channels is rendered once."""
    out: list[Delivery] = []
    rendered: dict[tuple[str, str], dict] = {}
    for intent in intents:
        item = intent.item
        message = rendered.get((intent.feed, item.key))
        if message is None:
            message = rendered[(intent.feed, item.key)] = render(item, intent.feed).to_json()
        out.append(Delivery(intent.channel, intent.feed, item.key, item.dedupe_key, message, item.legacy_dedupe_key))
    return out
