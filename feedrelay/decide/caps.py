"""Per-route caps (``max_per_poll``): past the cap, a poll's remaining new posts to a channel are folded into one
"N more from <feed>" message, listing each, instead of flooding the channel or being dropped. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from feedrelay.config import Feed
from feedrelay.model import Intent, Item

OVERFLOW_KIND = "overflow"  # the Item kind of the folded message (render/overflow.py draws it)


def cap(feed: Feed, intents: Iterable[Intent], *, now: float) -> list[Intent]:
    """The intents with each capped route's posts past its ``max_per_poll`` folded into one message per channel,
    queued where the first folded post would have been. Replies and edits of stories are never folded."""
    limits = {r.channel: r.max_per_poll for r in feed.routes if r.max_per_poll}
    intents = list(intents)
    if not limits:
        return intents
    posted: Counter[str] = Counter()
    folded: dict[str, list[Intent]] = {}
    out: list[Intent | str] = []  # a channel name marks where its overflow message goes
    for intent in intents:
        limit = limits.get(intent.channel)
        if limit is None or intent.action != "post" or intent.changes:
            out.append(intent)
            continue
        posted[intent.channel] += 1
        if posted[intent.channel] <= limit:
            out.append(intent)
            continue
        if intent.channel not in folded:
            out.append(intent.channel)
        folded.setdefault(intent.channel, []).append(intent)
    return [i if isinstance(i, Intent) else overflow(feed, folded[i], now) for i in out]


def overflow(feed: Feed, rest: list[Intent], now: float) -> Intent:
    first = rest[0]
    entries = [[i.item.title, i.item.link] for i in rest]
    item = Item(key=f"overflow:{now:.0f}:{first.item.key}", title=f"{len(rest)} more from {feed.name}",
                link="", kind=OVERFLOW_KIND, extra={"entries": entries, "feed": feed.name})
    return Intent(first.channel, feed.name, item, "post", template="full", mention=first.mention)
