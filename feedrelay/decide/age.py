"""A route's ``max_age``: an entry dated too long ago is remembered and not posted. A pure rule of data."""

from __future__ import annotations

from datetime import UTC, datetime

from feedrelay.config import format_duration
from feedrelay.model import Decision, Item


def too_old(max_age: float, item: Item, now: float, first_seen: float | None = None) -> Decision | None:
    """The verdict "skipped: older than max_age" when ``item`` is older than ``max_age`` seconds at ``now`` (0: no
    limit), else None. An entry is as old as its date; an undated one as old as when it was first seen
    (``first_seen``; a brand-new entry is first seen now, so it passes)."""
    if not max_age:
        return None
    # A feed that republishes its archive, or re-dates old posts under new ids, lists old entries as new.
    if item.published is not None:
        born, what = item.published.timestamp(), "published"
    elif first_seen is not None:
        born, what = first_seen, "undated, first seen"
    else:
        return None
    if now - born <= max_age:
        return None
    day = datetime.fromtimestamp(born, UTC).strftime("%Y-%m-%d")
    return Decision(False, f"skipped: older than max_age {format_duration(max_age)} ({what} {day})")
