"""Does an item pass a route's filter, and which rule decided? Pure functions of data."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import regex

from feedrelay.config import Filter, format_duration
from feedrelay.model import Decision, Item

MAX_FILTER_TEXT = 20_000  # characters of item text a rule looks at; bounds regex work on hostile input
REGEX_TIMEOUT = 0.05  # seconds per regex search; a pathological pattern cannot stall the relay
SEVERITY_RANK = {"none": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


@dataclass(frozen=True)
class _Rule:
    label: str  # e.g. 'keyword "postgres"' — shown by `preview` and debug logs
    pattern: regex.Pattern[str]


@dataclass(frozen=True)
class _Compiled:
    include: tuple[_Rule, ...]
    exclude: tuple[_Rule, ...]


def _keyword(phrase: str) -> regex.Pattern[str]:
    words = [regex.escape(w) for w in phrase.split()]
    # Whole words or phrases: "go" must not match "good"; any run of spaces between phrase words.
    return regex.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", regex.IGNORECASE)


@functools.lru_cache(maxsize=4096)
def _compile(flt: Filter) -> _Compiled:
    def rules(keywords: tuple[str, ...], patterns: tuple[str, ...]) -> tuple[_Rule, ...]:
        out = [_Rule(f'keyword "{k}"', _keyword(k)) for k in keywords]
        out += [_Rule(f"regex /{p}/", regex.compile(p, regex.IGNORECASE)) for p in patterns]
        return tuple(out)

    return _Compiled(rules(flt.include, flt.include_regex), rules(flt.exclude, flt.exclude_regex))


def filter_text(item: Item, fields: tuple[str, ...]) -> str:
    """The text the keyword and regex rules see: the chosen fields, one per line."""
    extra = item.extra
    values = {
        "title": item.title,
        "summary": item.summary,
        "description": item.summary,
        "content": item.content,
        "categories": "\n".join(item.categories),
        "author": item.author,
        "vendor": "\n".join(extra.get("vendors", ())),
        "product": "\n".join(extra.get("products", ())),
    }
    return "\n".join(values[f] for f in fields if values.get(f))[:MAX_FILTER_TEXT]


def _search(rule: _Rule, text: str) -> bool | None:
    try:
        return rule.pattern.search(text, timeout=REGEX_TIMEOUT) is not None
    except TimeoutError:
        return None


def _security(flt: Filter, item: Item) -> Decision | None:
    """Severity, score, vendor/product, CWE and KEV rules; None when none of them rejects."""
    extra = item.extra
    if extra.get("rejected"):
        return Decision(False, "excluded: Rejected (the CVE ID was withdrawn)")
    severity = extra.get("severity")  # None = unscored
    if flt.min_severity is not None or flt.min_score is not None:
        if severity is None:
            if flt.unscored_hold:
                pass  # held, if the other rules pass: see evaluate
            elif not flt.include_unscored:
                return Decision(False, "excluded: unscored and include_unscored = false")
        else:
            if flt.min_severity and SEVERITY_RANK.get(severity, 0) < SEVERITY_RANK[flt.min_severity.lower()]:
                return Decision(False, f"excluded: severity {severity} below min_severity {flt.min_severity}")
            score = extra.get("score")
            if flt.min_score is not None and (score is None or score < flt.min_score):
                return Decision(False, f"excluded: score {score} below min_score {flt.min_score}")
    if flt.kev_only and not extra.get("kev"):
        return Decision(False, "excluded: not in CISA KEV (kev_only)")
    if flt.cwes and not set(flt.cwes) & {c.upper() for c in extra.get("cwes", ())}:
        return Decision(False, f"excluded: none of CWEs {', '.join(flt.cwes)}")
    if flt.vendors or flt.products:
        wanted = [("vendor", v) for v in flt.vendors] + [("product", p) for p in flt.products]
        have = {("vendor", v.lower()) for v in extra.get("vendors", ())}
        have |= {("product", p.lower()) for p in extra.get("products", ())}
        if have:
            matched = any(w in have for w in wanted)
        else:
            # Most new CVEs have no CPE data yet: fall back to the names appearing in the text.
            text = filter_text(item, ("title", "summary"))
            matched = any(_keyword(name).search(text) for _, name in wanted)
        if not matched:
            return Decision(False, "excluded: no listed vendor or product")
    return None


def evaluate(flt: Filter, item: Item) -> Decision:
    """Exclude wins; then, if there are include rules, one of them must match. An unscored item that a route
    with a hold (include_unscored = "after 72h") would pass is held instead: the lifecycle posts it later."""
    decision = _evaluate(flt, item)
    if decision.passed and flt.unscored_hold and item.extra.get("severity") is None and item.kind in ("cve", "kev") \
            and (flt.min_severity is not None or flt.min_score is not None):
        return Decision(False, f"held: unscored; posted when a score passes, or unscored after "
                               f"{format_duration(flt.unscored_hold)}", held=True)
    return decision


def _evaluate(flt: Filter, item: Item) -> Decision:
    if (rejected := _security(flt, item)) is not None:
        return rejected
    compiled = _compile(flt)
    if not compiled.include and not compiled.exclude:
        return Decision(True, "passed: no keyword rules")
    text = filter_text(item, flt.fields)
    for rule in compiled.exclude:
        hit = _search(rule, text)
        if hit is None:
            return Decision(False, f"excluded: {rule.label} timed out (treated as a match)")
        if hit:
            return Decision(False, f"excluded by {rule.label}")
    if not compiled.include:
        return Decision(True, "passed: no exclude rule matched")
    for rule in compiled.include:
        if _search(rule, text):
            return Decision(True, f"included by {rule.label}")
    return Decision(False, "excluded: no include rule matched")
