"""A JSON Schema for feeds.toml, for editors (Taplo / Even Better TOML complete and check keys with it).

It is read off the loader itself rather than kept by hand beside it: for each table, a probe document with an
unknown key makes `parse_config` list the keys it accepts there, and a value of the wrong type makes it say what
each key takes. So a key added to the loader appears here at the next regeneration, and tests/test_schema.py
fails until docs/feeds.schema.json is regenerated:

    uv run python -m feedrelay.config.schema > docs/feeds.schema.json

Only what an editor can check is in the schema (keys, types, enumerations, required keys); the loader remains
the judge of the rest (a feed's channels exist, a regex compiles), with its precise messages.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import Any

from feedrelay.config import ConfigError, parse_config

REGENERATE = "uv run python -m feedrelay.config.schema > docs/feeds.schema.json"
_PROBE_KEY = "__schema_probe__"
_ODD = "\u0001"  # a string no key takes as is: its error names what the key does take

# A minimal valid table of each kind, so the probe of one key gets past the checks of the others (a feed needs a
# name and a destination; alerts a channel). Several where keys exclude each other (channel / channels).
_CHANNEL = "c"
_BASES: dict[str, list[dict[str, Any]]] = {
    "": [{"channels": {_CHANNEL: {"console": True}}}],
    "channels.*": [{"console": True}, {}],
    "feeds[]": [{"name": "p", "type": "nvd", "channels": [_CHANNEL]}, {"name": "p", "type": "nvd"}],
    "feeds[].routes[]": [{"channel": _CHANNEL}],
    "alerts": [{"channel": _CHANNEL}],
    "metrics": [{"listen": "127.0.0.1:9464"}],
    "feeds[].auth": [{"username_env": "U", "password_env": "P"}],
    "feeds[].headers.*": [{"env": "V"}],
}

_ENV_PATTERN = "^[A-Za-z_][A-Za-z0-9_]*$"
_URL_PATTERN = "^\\s*[Hh][Tt][Tt][Pp][Ss]?://"  # (the loader strips spaces around it first)
_STRINGS = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string", "minLength": 1}}]}

# What the loader says a key takes ("expected …") → the JSON Schema for it. Unknown phrases leave the key
# untyped (still completed, still not flagged as unknown), and `main` warns about them.
_PHRASES: list[tuple[str, Callable[[re.Match[str]], dict[str, Any]]]] = [
    (r"a string", lambda m: {"type": "string"}),
    (r"a channel name", lambda m: {"type": "string"}),
    (r"an integer or a number", lambda m: {"type": "number"}),
    (r"an integer", lambda m: {"type": "integer"}),
    (r"a number", lambda m: {"type": "number"}),
    (r"true or false", lambda m: {"type": "boolean"}),
    (r"a list of non-empty strings", lambda m: dict(_STRINGS)),
    (r"a duration such as (.*)", lambda m: {"type": ["string", "number"], "description": f"a duration such as {m[1]}"}),
    (r"a size such as (.*)", lambda m: {"type": ["string", "integer"], "description": f"a size such as {m[1]}"}),
    (r"an IANA time zone name .*", lambda m: {"type": "string", "description": 'an IANA time zone such as '
                                                                            '"Europe/Berlin", or "UTC"'}),
    (r"a probability between 0 and 1 or a percentage such as (.*)",
     lambda m: {"type": ["number", "string"], "description": f"0 to 1, or a percentage such as {m[1]}"}),
    (r"a CVSS score between (\d+) and (\d+)", lambda m: {"type": "number", "minimum": int(m[1]),
                                                         "maximum": int(m[2])}),
]
_TABLE = re.compile(r"a table\b")
_MAP = re.compile(r"\[([\w.]+)\.NAME\] tables")
_ARRAY = re.compile(r"\[\[([\w.]+)\]\] tables")
_ENUM = re.compile(r"expected (?:one of )?([\w-]+(?:, [\w-]+)*(?:,? or [\w-]+)?)$")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"


def _error(doc: dict[str, Any]) -> tuple[str, str] | None:
    """(key path, message) of the loader's complaint about the document, or None if it loads."""
    text = "\n".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in doc.items())
    try:
        parse_config(text, "feeds.toml", environ={})
    except ConfigError as exc:
        m = re.match(r"feeds\.toml(?::\d+)?: (?:(\S+): )?(.*)", str(exc), re.S)
        return (m[1] or "", m[2]) if m else ("", str(exc))
    return None


class _Context:
    """A table of feeds.toml: how to put one in a probe document, and the key path the loader's errors give it."""

    def __init__(self, name: str, prefix: str, place: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.name, self.prefix, self.place = name, prefix, place
        self.bases = _BASES.get(name, [{}])

    def child(self, key: str, kind: str) -> _Context:
        base = self.bases[0]
        if kind == "table":
            return _Context(f"{self.name}.{key}".lstrip("."), f"{self.prefix}{key}.",
                            lambda t: self.place({**base, key: t}))
        if kind == "map":
            return _Context(f"{self.name}.{key}.*".lstrip("."), f"{self.prefix}{key}.x.",
                            lambda t: self.place({**base, key: {"x": t}}))
        return _Context(f"{self.name}.{key}[]".lstrip("."), f"{self.prefix}{key}[0].",
                        lambda t: self.place({**base, key: [t]}))

    def complaint(self, key: str, value: Any, starts: str = "expected") -> str | None:
        """What the loader says about `key = value` in this table, if it is about that key (in the first base
        that lets it get that far)."""
        for base in self.bases:
            table = {k: v for k, v in base.items() if k != key}
            found = _error(self.place({**table, key: value}))
            if found and found[0] == self.prefix + key and found[1].startswith(starts):
                return found[1]
        return None

    def accepts(self, key: str, value: Any) -> bool:
        """Whether no base draws a complaint about `key = value` (another key's complaint says nothing of it)."""
        for base in self.bases:
            found = _error(self.place({**{k: v for k, v in base.items() if k != key}, key: value}))
            if found and found[0] == self.prefix + key:
                return False
        return True

    def key_names(self) -> list[str] | None:
        """The keys the loader accepts in this table; None for a table of names of the user's choosing."""
        found = _error(self.place({**self.bases[0], _PROBE_KEY: 1}))
        if not found or "valid keys here: " not in found[1]:
            return None
        return found[1].split("valid keys here: ", 1)[1].split(", ")

    def required(self) -> list[str]:
        present = self.bases[0]
        return [k for k in present if (e := _error(self.place({x: v for x, v in present.items() if x != k})))
                and e[0] == self.prefix + k]


unknown: list[str] = []  # key paths whose type the loader's wording did not tell (filled by build)


def _object(ctx: _Context) -> dict[str, Any]:
    names = ctx.key_names()
    if names is None:  # (e.g. a table of HTTP header names): any keys; the loader checks them
        unknown.append(ctx.prefix.rstrip("."))
        return {"type": "object"}
    properties = {key: _key(ctx, key) for key in names}
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required := ctx.required():
        schema["required"] = required
    return schema


def _key(ctx: _Context, key: str) -> dict[str, Any]:
    # An integer first (most keys refuse it with their own phrase); a table for keys an integer satisfies.
    phrase = ctx.complaint(key, 1) or ctx.complaint(key, {})
    if phrase is None:
        unknown.append(ctx.prefix + key)
        return {}
    what = re.split(r"[;,] got ", phrase.removeprefix("expected "), maxsplit=1)[0]
    if _TABLE.match(what) or not any(re.fullmatch(p, what) for p, _ in _PHRASES):
        # A table, or a phrase of its own (`auth = { … }`): if the loader lists the keys of a table there, or of
        # each table in it (header name → { env = … }), that is what it takes.
        if ctx.child(key, "table").key_names() is not None:
            return _object(ctx.child(key, "table"))
        if ctx.child(key, "map").key_names() is not None:
            return {"type": "object", "additionalProperties": _object(ctx.child(key, "map"))}
    if _TABLE.match(what):
        return _object(ctx.child(key, "table"))
    if _MAP.match(what):
        return {"type": "object", "additionalProperties": _object(ctx.child(key, "map"))}
    if _ARRAY.match(what):
        return {"type": "array", "items": _object(ctx.child(key, "array"))}
    for pattern, make in _PHRASES:
        if m := re.fullmatch(pattern, what):
            schema = make(m)
            break
    else:
        unknown.append(ctx.prefix + key)
        return {"description": f"expected {what}"}
    if schema.get("type") == "string":
        schema.update(_string_rules(ctx, key))
    return schema


def _string_rules(ctx: _Context, key: str) -> dict[str, Any]:
    """What a string key takes beyond being a string, where the loader says so: a set of words, a URL, the name
    of an environment variable."""
    def pattern(regex: str) -> str:
        # (some keys take "" for "none": api_key_env, runbook_url, an NVD or KEV feed's url)
        return f"^$|{regex}" if ctx.accepts(key, "") else regex

    phrase = ctx.complaint(key, _ODD)
    if phrase is None:
        # (refused, but not with an "expected …": the variable-name keys say "must name an environment variable")
        if ctx.complaint(key, _ODD, starts="must name an environment variable"):
            return {"pattern": pattern(_ENV_PATTERN), "description": "the name of an environment variable that "
                                                                     "holds the secret (never the secret itself)"}
        return {}
    what = re.split(r"[;,] got ", phrase, maxsplit=1)[0]
    if "http:// or https:// URL" in what or "http(s) URL" in what:
        return {"pattern": pattern(_URL_PATTERN)}
    if m := _ENUM.match(what):
        words = re.split(r",? or |, ", m[1])
        if all(ctx.accepts(key, w) for w in words):
            if all(ctx.accepts(key, w.upper()) for w in words):  # the loader ignores case: so must the editor
                return {"description": f"one of {', '.join(words)} (any case)", "examples": words}
            return {"enum": words}
    return {}


def build() -> dict[str, Any]:
    unknown.clear()
    root = _object(_Context("", "", lambda t: t))
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "feedrelay feeds.toml",
        "description": "feedrelay's configuration: docs/configuration.md describes every key. Generated from the "
                       f"loader by `{REGENERATE}`; do not edit.",
        **root,
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


def main() -> None:
    text = render()
    for path in unknown:
        print(f"feedrelay.config.schema: warning: {path}: the loader's messages did not tell its type or keys; the "
              "schema leaves it open (teach _PHRASES the loader's wording)", file=sys.stderr)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
