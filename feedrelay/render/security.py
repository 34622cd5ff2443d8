"""Messages for CVEs and KEV additions: what a responder needs at a glance. Pure functions."""

from __future__ import annotations

from typing import Any

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
        if extra.get("score_source") == "Secondary":
            label += ", CNA score"
        elif extra.get("score_source") == "CISA-ADP":
            label += ", CISA-ADP score"
        elif extra.get("score_source") == "GitHub":
            label += ", GitHub score"
        label += ")"
    return label


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
        shown = "; ".join(f"{v} {', '.join(ps)}" for v, ps in groups.items())
        more = int(extra.get("affected_total") or len(pairs)) - limit
    else:
        # Unpaired names cannot be matched up safely: list them alone.
        names = list(products or vendors)
        shown, more = ", ".join(names[:limit]), len(names) - limit
    if more > 0:
        shown += f" and {more} more"
    return fit(shown, 500)


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
    if x.get("rejected"):
        heading += "  ⛔ *Rejected*"
    blocks: list[dict[str, Any]] = [section(heading)]
    if item.summary:
        blocks.append(section(fit(item.summary, DESCRIPTION_LIMIT)))
    fields = [("Affects", _affected(x)), ("Vector", escape(x.get("vector", ""))),
              ("Weakness", escape(", ".join(x.get("cwes") or [])[:200])), ("Status", escape(x.get("status", "")))]
    if x.get("kev"):
        fields.insert(0, ("KEV due date", escape(str(x.get("kev_due") or "")) +
                          (f" (added {escape(str(x.get('kev_added')))})" if x.get("kev_added") else "")))
    if any(v for _, v in fields):
        blocks.append(_field_list(fields))
    if refs := _references(x.get("references") or []):
        blocks.append(section(f"References: {refs}"))
    blocks.append(context(feed_name, item.link, item.published))
    badge = " [CISA KEV]" if x.get("kev") else ""
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
    return Message(text=text[:3000], blocks=blocks)
