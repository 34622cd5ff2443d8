"""The keys that shape what a route posts, beside its filter: ``max_age``, ``template``, ``mention``, ``timezone``.

Checked here as the rest of the file is, with errors that name the file, the line and the key; the template's
placeholders are the render stage's (feedrelay.render.template), checked when the config is loaded.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feedrelay.config import Channel, Route, _Checker

ROUTE_KEYS = ("max_age", "template", "mention", "timezone", "thread", "max_per_poll")
MAX_MENTIONS = 10

_USER_ID = re.compile(r"[UW][A-Z0-9]{2,20}")
_MENTION = re.compile(r"<@[UW][A-Z0-9]{2,20}>|<!subteam\^S[A-Z0-9]{2,20}>|<!here>|<!channel>")
_FORMS = ('a user ID such as "U012ABC" (or "<@U012ABC>"), a user group as "<!subteam^S0123ABC>", "<!here>" or '
          '"<!channel>"')


def max_age(c: _Checker, raw: dict[str, Any], keypath: str, default: float) -> float:
    from feedrelay.config import parse_duration

    return float(c.convert(raw, "max_age", keypath, parse_duration, default))


def timezone(c: _Checker, raw: dict[str, Any], keypath: str, default: str) -> str:
    from feedrelay.config.durations import parse_zone

    return str(c.convert(raw, "timezone", keypath, parse_zone, default))


def max_per_poll(c: _Checker, raw: dict[str, Any], keypath: str) -> int:
    value = c.get(raw, "max_per_poll", keypath, int, 0)
    if value < 0:
        raise c.fail(f"{keypath}.max_per_poll", "expected 0 (no cap) or more")
    return int(value)


THREAD_MODES = ("daily", "off")


def thread(c: _Checker, raw: dict[str, Any], keypath: str) -> str:
    value = c.get(raw, "thread", keypath, str, "off").strip()
    if value not in THREAD_MODES:
        raise c.fail(f"{keypath}.thread", f'expected one of {", ".join(THREAD_MODES)}; got {value!r}')
    return "" if value == "off" else value


def template(c: _Checker, raw: dict[str, Any], keypath: str) -> str:
    """A preset name or a custom template, checked; "" when the table has none."""
    from feedrelay.render.template import PRESETS, TemplateError, check

    value = c.get(raw, "template", keypath, str, "")
    if "template" in raw and not value.strip():
        raise c.fail(f"{keypath}.template", f"expected a preset ({', '.join(PRESETS)}) or a template such as "
                                            '"{title_link} · {feed}"')
    if not value or value.strip() in PRESETS:
        return value.strip()
    if re.fullmatch(r"[\w-]+", value.strip()):
        # A bare word is a preset's name mistyped, not a template that posts the same word for every entry.
        import difflib

        close = difflib.get_close_matches(value.strip(), PRESETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise c.fail(f"{keypath}.template", f"unknown preset {value!r}{hint}; presets: {', '.join(PRESETS)}, or a "
                                            "template with placeholders such as {title_link}")
    try:
        check(value)
    except TemplateError as exc:
        raise _at_placeholder(c, f"{keypath}.template", str(exc), exc.placeholder) from None
    return value


def _at_placeholder(c: _Checker, keypath: str, message: str, placeholder: str) -> Exception:
    """The error on the line of the file that holds the placeholder (a template may span lines)."""
    from feedrelay.config import ConfigError

    line = c._locate(keypath)
    if line and placeholder:
        needle = "{" + placeholder
        line = next((n + 1 for n in range(line - 1, len(c.lines)) if needle in c.lines[n]), line)
    return ConfigError(f"{c.path}:{line}: {keypath}: {message}" if line else f"{c.path}: {keypath}: {message}")


def mentions(c: _Checker, raw: dict[str, Any], keypath: str) -> tuple[str, ...]:
    """Slack mention syntax for each configured user, user group, @here or @channel, in order, once each."""
    if "mention" not in raw:
        return ()
    out: list[str] = []
    for i, value in enumerate(c.strings(raw, "mention", keypath)):
        value = value.strip()
        if _USER_ID.fullmatch(value):
            value = f"<@{value}>"
        if not _MENTION.fullmatch(value):
            raise c.fail(f"{keypath}.mention[{i}]", f"expected {_FORMS}; got {value[:60]!r}{_hint(value)}")
        if value not in out:
            out.append(value)
    if len(out) > MAX_MENTIONS:
        raise c.fail(f"{keypath}.mention", f"at most {MAX_MENTIONS} mentions per route; ping a user group instead")
    return tuple(out)


def _hint(value: str) -> str:
    bare = value.strip("<>!@ ").lower()
    if bare in ("here", "channel", "everyone"):
        return f' (write "<!{bare}>")' if bare != "everyone" else " (@everyone is not allowed: use \"<!channel>\")"
    if re.fullmatch(r"(?:subteam\^)?s[a-z0-9]{2,20}", bare):
        return f' (a user group is written "<!subteam^{bare.split("^")[-1].upper()}>")'
    if re.fullmatch(r"[uw][a-z0-9]{2,20}", bare):
        return f' (Slack IDs are upper case: "{bare.upper()}")'
    if value.startswith("@") or not value.startswith("<"):
        return " (a name is not enough: copy the member ID from the user's Slack profile, or the user group's ID)"
    return ""


def resolve(c: _Checker, routes: list[Route], paths: list[str], kind: str, feed: str,
            channels: Mapping[str, Channel]) -> list[Route]:
    """Each route with its template: its own, else its channel's, else ``full``. A template with security
    placeholders only goes with NVD and KEV feeds, whose entries carry those fields."""
    from feedrelay.render.template import uses_security_fields

    out = []
    for route, path in zip(routes, paths, strict=True):
        own = bool(route.template)
        chosen = route.template or channels[route.channel].template or "full"
        if kind == "rss" and (wrong := uses_security_fields(chosen)):
            where = f"{path}.template" if own else f"channels.{route.channel}.template"
            tail = "" if own else (f"; feed {feed!r} posts to this channel: give its route a template of its own "
                                   "(template = \"full\" keeps the usual layout)")
            raise _at_placeholder(c, where, f"{{{wrong[0]}}} is for NVD and KEV feeds only (type = \"nvd\" or "
                                            f"\"kev\"), and {feed!r} is an RSS feed{tail}", wrong[0])
        # A webhook can neither reply in a thread nor learn its message's ts: its daily thread is plain posts.
        threaded = route.thread if channels[route.channel].kind != "webhook" else ""
        out.append(dataclasses.replace(route, template=chosen, thread=threaded))
    return out
