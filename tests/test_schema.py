"""docs/feeds.schema.json, the JSON Schema editors use for feeds.toml: generated from the loader, kept in step
with it, referenced by the example config, and true to every example in the docs."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from feedrelay.config import ConfigError, parse_config
from feedrelay.config.schema import REGENERATE, render

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = ROOT / "docs" / "feeds.schema.json"
SCHEMA = json.loads(SCHEMA_FILE.read_text())


def validator(schema: dict[str, Any] = SCHEMA) -> jsonschema.Draft7Validator:
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_committed_schema_is_what_the_loader_generates() -> None:
    fresh = render()
    assert fresh == SCHEMA_FILE.read_text(), f"docs/feeds.schema.json is out of date: run `{REGENERATE}`"


def test_example_config_points_editors_at_the_schema_and_follows_it() -> None:
    text = (ROOT / "feeds.toml").read_text()
    first = text.splitlines()[0]
    # Taplo (Even Better TOML) reads a "#:schema PATH" directive on the first line, relative to the file.
    assert first == "#:schema ./docs/feeds.schema.json"
    assert (ROOT / first.removeprefix("#:schema ")).resolve() == SCHEMA_FILE
    errors = [e.message for e in validator().iter_errors(tomllib.loads(text))]
    assert not errors
    parse_config(text, ROOT / "feeds.toml", environ={})  # the directive is a comment to the loader


def _contexts() -> dict[str, dict[str, Any]]:
    """The tables a docs snippet may be written in: a whole file, [defaults], a [[feeds]] table, a route."""
    feed = SCHEMA["properties"]["feeds"]["items"]
    route = feed["properties"]["routes"]["items"]

    def part(table: dict[str, Any]) -> dict[str, Any]:  # a few lines of it: its required keys may be elsewhere
        return {k: v for k, v in table.items() if k != "required"}

    return {"file": SCHEMA, "[defaults]": SCHEMA["properties"]["defaults"], "[[feeds]]": part(feed),
            "[[feeds.routes]]": part(route)}


def _snippets() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for n, block in enumerate(re.findall(r"```toml\n(.*?)```", path.read_text(), re.S)):
            where = f"{path.relative_to(ROOT)} toml block {n + 1}"
            try:
                docs = [tomllib.loads(block)]
            except tomllib.TOMLDecodeError:
                # A list of alternatives for one key ('interval = "90s"', 'interval = "15m"', …): one per line.
                docs = [tomllib.loads(line) for line in block.splitlines() if line.strip()]
            for doc in docs:
                if isinstance(doc.get("feeds"), dict):  # a lone [[feeds.routes]], to go under some [[feeds]]
                    doc = doc["feeds"]
                found.append((where, doc))
    return found


def test_every_toml_example_in_the_docs_follows_the_schema() -> None:
    snippets = _snippets()
    assert len(snippets) > 40  # README.md, configuration.md and security-sources.md are full of them
    checkers = {name: validator(schema) for name, schema in _contexts().items()}
    for where, doc in snippets:
        complaints = {name: [e.message for e in v.iter_errors(doc)] for name, v in checkers.items()}
        assert any(not c for c in complaints.values()), f"{where} fits no table of the schema: {complaints}\n{doc}"


MISTAKES = [
    ("a misspelt key", '[defaults]\nintervl = "15m"\n'),
    ("a table misspelt", '[default]\ninterval = "15m"\n'),
    ("a word for a number", '[defaults]\nbacklog = "ten"\n'),
    ("an unknown feed type", '[[feeds]]\nname = "x"\ntype = "atom"\nurl = "https://e.com/f"\nchannels = ["c"]\n'),
    ("a feed without a name", '[[feeds]]\nurl = "https://e.com/f"\nchannels = ["c"]\n'),
    ("a webhook URL where its variable's name goes", '[channels.c]\nwebhook_env = "https://hooks.slack.com/x"\n'),
    ("a score out of range", '[[feeds]]\nname = "n"\ntype = "nvd"\nchannels = ["c"]\nmin_score = 11\n'),
    ("a feed URL that is not http(s)", '[[feeds]]\nname = "x"\nurl = "ftp://e.com/f"\nchannels = ["c"]\n'),
    ("alerts without a channel", '[alerts]\nfeed_failing_after = "1h"\n'),
    ("a route key misspelt", '[[feeds]]\nname = "x"\nurl = "https://e.com/f"\n[[feeds.routes]]\nchanel = "c"\n'),
]


@pytest.mark.parametrize(("mistake", "text"), MISTAKES, ids=[m for m, _ in MISTAKES])
def test_the_editor_flags_what_the_loader_refuses(mistake: str, text: str) -> None:
    full = '[channels.c]\nconsole = true\n' + text if "[channels.c]" not in text else text
    with pytest.raises(ConfigError):
        parse_config(full, "feeds.toml", environ={})
    assert list(validator().iter_errors(tomllib.loads(full))), f"the schema lets {mistake} through"


def test_case_the_loader_ignores_is_not_flagged() -> None:
    text = ('[channels.c]\nconsole = true\n'
            '[[feeds]]\nname = "n"\ntype = "nvd"\nchannels = ["c"]\nmin_severity = "HIGH"\n')
    parse_config(text, "feeds.toml", environ={})
    assert not list(validator().iter_errors(tomllib.loads(text)))
