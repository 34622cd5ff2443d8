"""Does an item pass a route's filter, and which rule decided? Pure functions of data (and of a clock: a regex
search may time out, and a poll's filtering has a time budget, see :func:`budget`)."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import regex

from feedrelay.config import Filter, format_duration
from feedrelay.decide import epss
from feedrelay.model import SECURITY_KINDS, Decision, Item

MAX_FILTER_TEXT = 20_000  # characters of item text a rule looks at; bounds regex work on hostile input
REGEX_TIMEOUT = 0.05  # seconds per regex search; a pathological pattern cannot stall the relay
# CPU seconds of rule searching one poll may spend; the entries past it are held for a later poll. CPU time, not
# wall time, so that a busy machine does not hold entries: a route of 8 keywords and 3 patterns takes ~50 µs
# of CPU per entry (0.5 s for an NVD part of 10,000 CVEs); 5,000 entries against a catastrophic pattern would
# take 250 s (each search stopped at REGEX_TIMEOUT).
FILTER_BUDGET = 2.0
SEVERITY_RANK = {"none": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


@dataclass
class Budget:
    """The time one poll may spend searching rules, and where it went (for the feed's warning)."""

    seconds: float = FILTER_BUDGET
    clock: Callable[[], float] = time.thread_time
    deadline: float = 0.0
    spent: Counter[tuple[Filter, str]] = field(default_factory=Counter)  # (filter, rule label) → seconds
    timeouts: Counter[tuple[Filter, str]] = field(default_factory=Counter)  # searches stopped at REGEX_TIMEOUT
    exhausted: bool = False  # the budget ran out: later entries were not searched

    def __post_init__(self) -> None:
        self.deadline = self.clock() + self.seconds

    def culprit(self) -> tuple[Filter, str] | None:
        """The rule that took the most time (or timed out most): the one to fix."""
        ranked = self.timeouts or self.spent
        return ranked.most_common(1)[0][0] if ranked else None


_budget: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("feedrelay_filter_budget", default=None)


@contextlib.contextmanager
def budget(seconds: float = FILTER_BUDGET, clock: Callable[[], float] = time.thread_time) -> Iterator[Budget]:
    """Every :func:`evaluate` inside (in this thread or task) shares one time budget; past it, entries are held
    (Decision.undecided)."""
    b = Budget(seconds, clock)
    token = _budget.set(b)
    try:
        yield b
    finally:
        _budget.reset(token)


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


class _Held(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _search(flt: Filter, rule: _Rule, text: str) -> bool:
    """Whether the rule matches; raises _Held when it cannot be told in time."""
    b = _budget.get()
    if b is None:
        try:
            return rule.pattern.search(text, timeout=REGEX_TIMEOUT) is not None
        except TimeoutError:
            raise _Held(f"held: {rule.label} timed out ({REGEX_TIMEOUT * 1000:.0f} ms)") from None
    start = b.clock()
    remaining = b.deadline - start
    if remaining <= 0:
        b.exhausted = True
        raise _Held(f"held: this poll's filter time ({b.seconds:g} s) was spent")
    try:
        return rule.pattern.search(text, timeout=min(REGEX_TIMEOUT, remaining)) is not None
    except TimeoutError:
        if remaining < REGEX_TIMEOUT:
            b.exhausted = True
            raise _Held(f"held: this poll's filter time ({b.seconds:g} s) was spent") from None
        b.timeouts[(flt, rule.label)] += 1
        raise _Held(f"held: {rule.label} timed out ({REGEX_TIMEOUT * 1000:.0f} ms)") from None
    finally:
        b.spent[(flt, rule.label)] += b.clock() - start  # type: ignore[assignment]  # (a Counter of seconds)


def _mentions(flt: Filter, item: Item) -> Decision | None:
    """An RSS entry under security rules: it passes if ANY CVE it mentions passes them all (the same rules, AND
    across keys, as an NVD route's); one that mentions no CVE fails. While a mentioned CVE is still to be looked
    up and none passes yet, the entry is undecided: judged again at a later poll, not dropped."""
    if not flt.security_rules:
        return None
    mentions = item.extra.get("mentions") or []
    if not mentions:
        return Decision(False, "excluded: mentions no CVE (this route has security keys)")
    why: list[str] = []
    pending: list[str] = []
    for m in mentions:
        cve = str(m.get("cve", ""))
        if m.get("pending"):
            pending.append(cve)
            continue
        if m.get("unknown"):
            why.append(f"{cve}: not known (not in NVD, or lookups off)")
            continue
        # Judged as an NVD record of it would be; a CVE without CPE data is matched by vendor or product names in
        # the entry's own text (its title and summary), as NVD's are in their description.
        probe = Item(key=cve, title=item.title, link="", summary=item.summary, kind="cve", extra=m)
        decision = _security(flt, probe)
        if decision is None:
            return None
        why.append(f"{cve}: {decision.reason.removeprefix('excluded: ')}")
    if pending:
        return Decision(False, f"held: {len(pending)} mentioned CVE(s) not looked up yet ({', '.join(pending[:3])}); "
                               "judged again at a later poll", undecided=True)
    return Decision(False, f"excluded: no mentioned CVE passes ({'; '.join(why[:3])})")


def _security(flt: Filter, item: Item) -> Decision | None:
    """Severity, score, vendor/product, CWE and KEV rules; None when none of them rejects."""
    if item.kind not in SECURITY_KINDS:
        return _mentions(flt, item)
    extra = item.extra
    if extra.get("withdrawn"):
        return Decision(False, "excluded: withdrawn by GitHub")
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
    if flt.ssvc_exploitation and extra.get("ssvc_exploitation") not in flt.ssvc_exploitation:
        # Like kev_only: a CVE CISA has not assessed (yet, or an NVD record, which has no SSVC) does not pass.
        value = extra.get("ssvc_exploitation")
        return Decision(False, f"excluded: CISA SSVC exploitation {value} not in ssvc_exploitation" if value else
                        "excluded: no CISA SSVC assessment (ssvc_exploitation)")
    if flt.automatable is not None and extra.get("automatable") is not flt.automatable:
        value = extra.get("automatable")
        return Decision(False, "excluded: no CISA SSVC assessment (automatable)" if value is None else
                        f"excluded: CISA SSVC automatable is {'yes' if value else 'no'}")
    if flt.cwes and not set(flt.cwes) & {c.upper() for c in extra.get("cwes", ())}:
        return Decision(False, f"excluded: none of CWEs {', '.join(flt.cwes)}")
    if flt.ecosystems and not set(flt.ecosystems) & {str(e).lower() for e in extra.get("ecosystems", ())}:
        return Decision(False, f"excluded: none of ecosystems {', '.join(flt.ecosystems)}")
    if flt.packages and not set(flt.packages) & {str(p).lower() for p in extra.get("packages", ())}:
        return Decision(False, "excluded: no listed package")
    if flt.vendors or flt.products:
        wanted = [("vendor", v) for v in flt.vendors] + [("product", p) for p in flt.products]
        have = {("vendor", v.lower()) for v in extra.get("vendors", ())}
        have |= {("product", p.lower()) for p in extra.get("products", ())}
        if have:
            matched = any(w in have for w in wanted)
            if not matched and (extra.get("cna_vendors") or extra.get("cna_products")):
                # A CNA names its vendor as it likes ("Apache Software Foundation"): a listed name also matches as
                # whole words of the CNA's vendor or product names (cvelist items).
                names = {"vendor": "\n".join(extra.get("cna_vendors", ())),
                         "product": "\n".join(extra.get("cna_products", ()))}
                matched = any(names[kind] and _keyword(name).search(names[kind]) for kind, name in wanted)
        else:
            # Most new CVEs have no CPE data yet: fall back to the names appearing in the text.
            text = filter_text(item, ("title", "summary"))
            matched = any(_keyword(name).search(text) for _, name in wanted)
        if not matched:
            return Decision(False, "excluded: no listed vendor or product")
    return None


def evaluate(flt: Filter, item: Item) -> Decision:
    """Exclude wins; then, if there are include rules, one of them must match. A rule that cannot be searched
    in time (a pathological pattern, or the poll's budget spent) decides nothing: the entry is undecided. An
    unscored item that a route with a hold (include_unscored = "after 72h") would pass is held instead: the
    lifecycle posts it later."""
    decision = _evaluate(flt, item)
    # Last, so that a CVE failing only this rule is known to (a candidate when the next EPSS file comes).
    if decision.passed and (below := epss.check(flt, item)) is not None:
        return below
    if decision.passed and flt.unscored_hold and item.extra.get("severity") is None and item.kind in SECURITY_KINDS \
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
    held = ""  # the first rule that could not be searched; a match of another rule still decides
    for rule in compiled.exclude:
        try:
            if _search(flt, rule, text):
                return Decision(False, f"excluded by {rule.label}")
        except _Held as exc:
            held = held or exc.reason
    if not held and not compiled.include:
        return Decision(True, "passed: no exclude rule matched")
    for rule in compiled.include if not held else ():
        try:
            if _search(flt, rule, text):
                return Decision(True, f"included by {rule.label}")
        except _Held as exc:
            held = held or exc.reason
    if held:
        return Decision(False, held + "; judged again at a later poll", undecided=True)
    return Decision(False, "excluded: no include rule matched")
