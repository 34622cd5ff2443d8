"""Messages for CVEs and KEV additions: what a responder needs at a glance. Pure functions."""

from __future__ import annotations

from typing import Any

from feedrelay.decide.epss import label as epss_label
from feedrelay.decide.epss import score_of
from feedrelay.model import Item
from feedrelay.render.message import Message
from feedrelay.render.mrkdwn import context, escape, fit, host_of, link, safe_url, section

SEVERITY_EMOJI = {"critical": "🔴", "high": "🟠", "medium": "🟡", "low": "🟢", "none": "⚪"}
DESCRIPTION_LIMIT = 1200


def severity_label(extra: dict[str, Any]) -> str:
    severity = extra.get("severity")
    if not severity:
        return "⚪ Unscored"
    label = f"{SEVERITY_EMOJI.get(severity, '⚪')} {severity.capitalize()}"
    if extra.get("score") is not None:
        label += f" {extra['score']:.1f}"
    if extra.get("cvss_version"):
        label += f" (CVSS {extra['cvss_version']}"
        if extra.get("score_source") in ("Secondary", "CNA"):
            label += ", CNA score"
        elif extra.get("score_source") == "CISA-ADP":
            label += ", CISA-ADP score"
        elif extra.get("score_source") == "GitHub":
            label += ", GitHub score"
        label += ")"
    return label


def epss_badge(extra: dict[str, Any]) -> str:
    """"EPSS 12.3% (96th percentile)" when the CVE's score is known, else ""."""
    score = score_of(extra)
    return epss_label(score) if score else ""


def _field_list(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    return {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"[:2000], "verbatim": True}
                                          for k, v in pairs[:10] if v]}


def _affected(extra: dict[str, Any], limit: int = 5) -> str:
    """Up to ``limit`` real (vendor, product) pairs, grouped by vendor: "microsoft exchange server, sharepoint
    server; acme exchange server"."""
    vendors, products = extra.get("vendors") or [], extra.get("products") or []
    pairs = [(str(v), str(p)) for v, p in extra.get("affected") or []]
    if not pairs and len(vendors) == 1:
        pairs = [(vendors[0], p) for p in products]  # one vendor (KEV): it makes every product listed
    if pairs:
        groups: dict[str, list[str]] = {}
        for vendor, product in pairs[:limit]:
            groups.setdefault(vendor, []).append(product)
        shown = "; ".join(f"{v} {', '.join(ps)}".strip() for v, ps in groups.items())  # (a CNA's "n/a" vendor: "")
        more = int(extra.get("affected_total") or len(pairs)) - limit
    else:
        # Unpaired names cannot be matched up safely: list them alone.
        names = list(products or vendors)
        shown, more = ", ".join(names[:limit]), len(names) - limit
    if more > 0:
        shown += f" and {more} more"
    return fit(shown, 500)


SSVC_EMOJI = {"active": "🔥", "poc": "🧪", "none": ""}


def ssvc_label(extra: dict[str, Any]) -> str:
    """CISA's SSVC decision points, where CISA has assessed the CVE: "🔥 Exploitation: active · Automatable: yes ·
    Technical impact: total"; "" when unknown."""
    parts = []
    if exploitation := extra.get("ssvc_exploitation"):
        parts.append(f"{SSVC_EMOJI.get(exploitation, '')} Exploitation: {exploitation}".strip())
    if extra.get("automatable") is not None:
        parts.append(f"Automatable: {'yes' if extra['automatable'] else 'no'}")
    if impact := extra.get("technical_impact"):
        parts.append(f"Technical impact: {impact}")
    return " · ".join(parts)


def _references(urls: list[str], limit: int = 3) -> str:
    # Labels are the links' own hosts, so nothing can hide where a reference leads.
    shown = [link(u, host_of(u) or u) for u in urls if safe_url(u)][:limit]
    return " · ".join(shown)


def render_security(item: Item, feed_name: str) -> Message:
    if item.kind == "ghsa":
        return render_ghsa(item, feed_name)
    return render_kev(item, feed_name) if item.kind == "kev" else render_cve(item, feed_name)


def _packages(affected: list[list[str]], total: int, limit: int = 8) -> str:
    """One line per vulnerable package: ecosystem, name, the vulnerable range, the first patched version."""
    lines = []
    for eco, name, versions, patched in [([*list(a), "", "", "", ""])[:4] for a in affected[:limit]]:
        line = f"• `{fit(name, 200)}` ({fit(eco, 30)})" if eco else f"• `{fit(name, 200)}`"
        if versions:
            line += f" {fit(versions, 100)}"
        line += f" → patched in *{fit(patched, 60)}*" if patched else " → no patched version yet"
        lines.append(line)
    if total > len(lines):
        lines.append(f"…and {total - len(lines)} more")
    return "\n".join(lines)


def render_ghsa(item: Item, feed_name: str) -> Message:
    x = item.extra
    ghsa = str(x.get("ghsa") or item.key)
    heading = f"*{link(item.link, ghsa)}*  {escape(severity_label(x))}"
    if x.get("cve"):
        heading += f"  {escape(str(x['cve']))}"
    if x.get("kev"):
        heading += "  🚨 *CISA KEV*"
    if x.get("withdrawn"):
        heading += "  ⛔ *Withdrawn*"
    summary = item.title.split(": ", 1)[1] if ": " in item.title else ""
    blocks: list[dict[str, Any]] = [section(heading)]
    if summary:
        blocks.append(section(f"*{fit(summary, 300)}*"))
    if item.summary:
        blocks.append(section(fit(item.summary, DESCRIPTION_LIMIT)))
    affected = [list(a) for a in x.get("affected") or []]
    if affected:
        blocks.append(section("*Packages*\n" + _packages(affected, int(x.get("total_packages") or len(affected)))))
    fields = [("Vector", escape(x.get("vector", ""))), ("Weakness", escape(", ".join(x.get("cwes") or [])[:200]))]
    if x.get("kev"):
        fields.insert(0, ("KEV due date", escape(str(x.get("kev_due") or ""))))
    if any(v for _, v in fields):
        blocks.append(_field_list(fields))
    if refs := _references(x.get("references") or []):
        blocks.append(section(f"References: {refs}"))
    blocks.append(context(feed_name, item.link, item.published))
    packages = "; ".join(f"{a[1]} {a[2]}".strip() for a in affected[:3])
    text = f"{escape(ghsa)} {escape(severity_label(x))}: {fit(summary or item.summary, 300)}"
    if packages:
        text += f" ({fit(packages, 300)})"
    return Message(text=text[:3000], blocks=blocks)


def render_cve(item: Item, feed_name: str) -> Message:
    x = item.extra
    cve = escape(x.get("cve", item.title))
    heading = f"*{link(item.link, x.get('cve', item.title))}*  {escape(severity_label(x))}"
    if x.get("kev"):
        heading += "  🚨 *CISA KEV*"
    if epss := epss_badge(x):
        heading += f"  📈 {epss}"
    if x.get("rejected"):
        heading += "  ⛔ *Rejected*"
    blocks: list[dict[str, Any]] = [section(heading)]
    if x.get("name"):  # the CNA's title (CVE List records)
        blocks.append(section(f"*{fit(x['name'], 300)}*"))
    if item.summary:
        blocks.append(section(fit(item.summary, DESCRIPTION_LIMIT)))
    fields = [("Affects", _affected(x)), ("Vector", escape(x.get("vector", ""))),
              ("Weakness", escape(", ".join(x.get("cwes") or [])[:200])), ("Status", escape(x.get("status", "")))]
    if ssvc := ssvc_label(x):
        fields.insert(0, ("CISA SSVC", escape(ssvc)))
    if x.get("kev") and not x.get("kev_due") and x.get("kev_added"):
        # (CISA's ADP container records the KEV addition, not its due date: a KEV feed tells that)
        fields.insert(0, ("CISA KEV", f"added {escape(str(x['kev_added']))}"))
    elif x.get("kev"):
        fields.insert(0, ("KEV due date", escape(str(x.get("kev_due") or "")) +
                          (f" (added {escape(str(x.get('kev_added')))})" if x.get("kev_added") else "")))
    if any(v for _, v in fields):
        blocks.append(_field_list(fields))
    if refs := _references(x.get("references") or []):
        blocks.append(section(f"References: {refs}"))
    blocks.append(context(feed_name, item.link, item.published))
    badge = " [CISA KEV]" if x.get("kev") else ""
    if x.get("ssvc_exploitation") in ("poc", "active"):
        badge += f" [SSVC exploitation: {x['ssvc_exploitation']}]"
    badge += f" [{epss}]" if epss else ""
    text = f"{cve} {escape(severity_label(x))}{badge}: {fit(item.summary, 300)}"
    return Message(text=text[:3000], blocks=blocks)


def render_kev(item: Item, feed_name: str) -> Message:
    x = item.extra
    cve = x.get("cve", item.key)
    affected = _affected(x)
    heading = f"🚨 *Added to CISA KEV: {link(item.link, cve)}*"
    if affected:
        heading += f" — {affected}"
    blocks: list[dict[str, Any]] = [section(heading)]
    if x.get("name"):
        blocks.append(section(f"*{fit(x['name'], 300)}*"))
    if item.summary:
        blocks.append(section(fit(item.summary, DESCRIPTION_LIMIT)))
    blocks.append(_field_list([
        ("EPSS", epss_badge(x).removeprefix("EPSS ")),
        ("Date added", escape(str(x.get("kev_added") or ""))),
        ("Due date", escape(str(x.get("kev_due") or ""))),
        ("Known ransomware use", escape(x.get("ransomware") or "Unknown")),
        ("Weakness", escape(", ".join(x.get("cwes") or []))),
    ]))
    if x.get("kev_action"):
        blocks.append(section(f"*Required action:* {fit(x['kev_action'], 800)}"))
    if refs := _references(x.get("references") or []):
        blocks.append(section(f"Notes: {refs}"))
    blocks.append(context(feed_name, item.link, item.published))
    text = f"Added to CISA KEV: {escape(cve)} — {affected} — {fit(x.get('name', ''), 300)}"
    if epss := epss_badge(x):
        text += f" [{epss}]"
    return Message(text=text[:3000], blocks=blocks)
