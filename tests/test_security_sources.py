"""NVD, CISA KEV and CISA advisories, end to end through the CLI against loopback servers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from feedrelay.config import Filter
from feedrelay.decide.filters import evaluate
from feedrelay.ingest.fetch import FetchError
from feedrelay.render import render
from feedrelay.sources.nvd import _json as nvd_json
from feedrelay.sources.nvd import cve_item, pick_metric
from tests.cli import Relay
from tests.feedgen import rss
from tests.nvd_server import FIXTURES, FakeNVD, fixture_records, synthetic
from tests.servers import FakeSlack, FeedServer

API_KEY = "nvd-canary-key-0123456789"
SECURITY = {"security": {"slack": "#security", "min_interval": "0s"}}


def posted_cves(slack: FakeSlack) -> list[str]:
    return [re.search(r"CVE-\d{4}-\d+", p.blocks[0]["text"]["text"]).group(0) for p in slack.posts]  # type: ignore[union-attr]


@pytest.fixture
def relay(tmp_path: Path, fake_slack: FakeSlack) -> Relay:
    return Relay(tmp_path, fake_slack.api_url, extra_env={"NVD_API_KEY": API_KEY})


def nvd_feed(url: str, **extra: object) -> dict[str, object]:
    return {"name": "NVD", "type": "nvd", "url": url, "api_key_env": "NVD_API_KEY", "channels": ["security"],
            **extra}


def v31(score: float, severity: str, kind: str = "Primary") -> dict[str, object]:
    return {"source": "x", "type": kind, "cvssData": {"version": "3.1", "baseScore": score, "baseSeverity": severity,
                                                      "vectorString": "CVSS:3.1/AV:N"}}


def test_nvd_pages_are_posted_once_and_first_run_posts_nothing(relay: Relay, feed_server: FeedServer,
                                                               fake_slack: FakeSlack) -> None:
    records = [
        *fixture_records(),
        synthetic("CVE-2026-0001", metrics={"cvssMetricV31": [v31(8.1, "HIGH", "Secondary")]}),
        synthetic("CVE-2026-0002", status="Rejected", description="Rejected reason: duplicate of CVE-2026-0001"),
    ]
    nvd = FakeNVD(feed_server, records, page_size=20, api_key=API_KEY)
    relay.configure(channels=SECURITY, feeds=[nvd_feed(nvd.url)])
    first = relay("once")
    assert first.code == 0, first.output
    assert fake_slack.posts == [] and nvd.queries == []  # first run starts from now

    second = relay("once")
    assert second.code == 0, second.output
    cves = posted_cves(fake_slack)
    expected = {r["cve"]["id"] for r in records} - {"CVE-2026-0002"}  # Rejected CVEs are never posted
    assert sorted(cves) == sorted(expected) and len(cves) == 48
    assert [int(q["startIndex"]) for q in nvd.queries] == [0, 20, 40]  # paged until totalResults

    assert relay("once").code == 0
    assert len(fake_slack.posts) == 48  # a CVE seen again (modified later) is not re-posted
    assert API_KEY not in relay("status").output + second.output


def test_nvd_window_interrupted_by_503_is_repeated_without_loss(relay: Relay, feed_server: FeedServer,
                                                                 fake_slack: FakeSlack) -> None:
    records = fixture_records()
    nvd = FakeNVD(feed_server, records, page_size=20, api_key=API_KEY)
    relay.configure(channels=SECURITY, feeds=[nvd_feed(nvd.url)])
    assert relay("once").code == 0
    # Page 2 fails three times in a row: more than the in-poll retries.
    nvd.queries.clear()
    nvd.failures.extend([0, 503, 503, 503])  # page 1 answers; page 2 fails more often than retried in-poll
    failing = relay("once")
    assert failing.code == 1
    assert "503" in failing.err and "repeated" in failing.err
    assert fake_slack.posts == []  # nothing of a half-read window is posted
    starts = {q["lastModStartDate"] for q in nvd.queries}
    assert len(starts) == 1

    nvd.failures.extend([503])  # one more transient failure: retried inside the poll
    recovered = relay("once")
    assert recovered.code == 0, recovered.output
    assert sorted(posted_cves(fake_slack)) == sorted(r["cve"]["id"] for r in records)
    # The repeated window started where the failed one did: the watermark had not moved.
    assert nvd.queries[-1]["lastModStartDate"] in starts


def test_nvd_throttling_and_bad_parameters_are_reported(tmp_path: Path, feed_server: FeedServer,
                                                        fake_slack: FakeSlack) -> None:
    relay = Relay(tmp_path, fake_slack.api_url, extra_env={"NVD_API_KEY": "wrong-key-abcdef"})
    nvd = FakeNVD(feed_server, fixture_records(), api_key=API_KEY)
    relay.configure(channels=SECURITY, feeds=[nvd_feed(nvd.url)])
    assert relay("once").code == 0
    result = relay("once")
    assert result.code == 1
    assert "HTTP 403" in result.err and "throttled even with the API key" in result.err
    assert "wrong-key-abcdef" not in result.output
    assert len(nvd.queries) == 3  # backed off and retried twice, then gave up until the next poll

    nvd.api_key = "wrong-key-abcdef"
    nvd.bad_request = "Invalid lastModStartDate format"
    result = relay("once")
    assert result.code == 1
    assert "NVD rejected the request: Invalid lastModStartDate format" in result.err


def test_kev_diff_of_two_real_snapshots_posts_exactly_the_additions(relay: Relay, feed_server: FeedServer,
                                                                     fake_slack: FakeSlack) -> None:
    feed_server.set("/kev.json", (FIXTURES / "kev" / "kev-2025.08.12.json").read_bytes(),
                    content_type="application/json")
    relay.configure(channels=SECURITY, feeds=[{"name": "CISA KEV", "type": "kev", "url": feed_server.url("/kev.json"),
                                               "channels": ["security"]}])
    assert relay("once").code == 0
    assert fake_slack.posts == []  # first run: 1,397 entries remembered, none posted
    assert relay("once").code == 0  # unchanged: 304
    feed_server.set("/kev.json", (FIXTURES / "kev" / "kev-2025.08.13.json").read_bytes(),
                    content_type="application/json")
    result = relay("once")
    assert result.code == 0, result.output
    assert sorted(posted_cves(fake_slack)) == ["CVE-2025-8875", "CVE-2025-8876"]
    text = json.dumps([p.blocks for p in fake_slack.posts])
    assert "N-able" in text and "Due date" in text and "2025-08-20" in text and "Required action" in text


def test_without_slack_the_terminal_shows_every_field_of_cve_and_kev_messages(tmp_path: Path,
                                                                             feed_server: FeedServer) -> None:
    # No token: `once` prints to the terminal. The fields are what a responder reads first.
    relay = Relay(tmp_path, api_url=None, token=None)
    nvd = FakeNVD(feed_server, fixture_records("nvdlib-CVE-2021-26855.json"))
    feed_server.set("/kev.json", (FIXTURES / "kev" / "kev-2025.08.12.json").read_bytes(),
                    content_type="application/json")
    relay.configure(channels={"security": {"slack": "#security", "min_interval": "0s"}}, feeds=[
        {"name": "NVD", "type": "nvd", "url": nvd.url, "channels": ["security"]},
        {"name": "CISA KEV", "type": "kev", "url": feed_server.url("/kev.json"), "channels": ["security"]}])
    assert relay("once").code == 0  # first run: nothing printed, the KEV catalog of 12 August remembered
    feed_server.set("/kev.json", (FIXTURES / "kev" / "kev-2025.08.13.json").read_bytes(),
                    content_type="application/json")
    result = relay("once")
    assert result.code == 0, result.output
    out = result.out
    cve = out[out.index("CVE-2021-26855"):]
    cve = cve[:cve.index("── #security")] if "── #security" in cve else cve
    for line in ("KEV due date: 2021-04-16 (added 2021-11-03)", "Affects: microsoft exchange server",
                 "Vector: CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "Weakness: CWE-918", "Status: Analyzed"):
        assert f"\n{line}\n" in cve, out
    kev = out[out.index("Added to CISA KEV: CVE-2025-8875"):]
    kev = kev[:kev.index("── #security")] if "── #security" in kev else kev
    for line in ("Date added: 2025-08-13", "Due date: 2025-08-20", "Known ransomware use: Unknown"):
        assert f"\n{line}\n" in kev, out
    assert "Required action:" in kev and "N-able N-Central Insecure Deserialization Vulnerability" in kev
    assert '"type"' not in out and "mrkdwn" not in out  # read as text, not as Block Kit JSON


def test_cisa_advisory_rss_with_two_digit_years_and_cve_links(relay: Relay, feed_server: FeedServer,
                                                              fake_slack: FakeSlack) -> None:
    feed_server.set("/all.xml", rss([]))
    relay.configure(channels=SECURITY, feeds=[{"name": "CISA Advisories", "url": feed_server.url("/all.xml"),
                                               "channels": ["security"]}])
    assert relay("once").code == 0
    body = ("<h2>Summary</h2><p>Siemens SIMATIC is affected by CVE-2026-12345 and CVE-2026-0999 &amp; more."
            "</p><script>alert(1)</script>")
    feed_server.set("/all.xml", rss([{"guid": "/node/25374", "title": "Siemens SIMATIC S7", "description": body,
                                      "link": "https://www.cisa.gov/news-events/ics-advisories/icsa-26-239-01",
                                      "pubDate": "Thu, 27 Aug 26 12:00:00 +0000"}]))
    assert relay("once").code == 0
    [post] = fake_slack.posts
    blocks = json.dumps(post.blocks)
    assert "2026-08-27 12:00 UTC" in blocks  # the two-digit year is 2026
    assert "<https://nvd.nist.gov/vuln/detail/CVE-2026-12345|CVE-2026-12345>" in blocks
    assert "alert(1)" not in blocks and "&amp; more" in blocks


# --- severity and filters: pure rules over real and synthetic records ------------------------------------


def test_severity_precedence() -> None:
    v40_cna = {"source": "cna", "type": "Secondary", "cvssData": {"version": "4.0", "baseScore": 9.3,
                                                                  "baseSeverity": "CRITICAL"}}
    assert pick_metric({"cvssMetricV40": [v40_cna], "cvssMetricV31": [v31(7.5, "HIGH")]})["version"] == "4.0"
    both = pick_metric({"cvssMetricV31": [v31(5.0, "MEDIUM", "Secondary"), v31(7.5, "HIGH", "Primary")]})
    assert both["score"] == 7.5 and both["source_type"] == "Primary"  # NVD's own score first
    cna_only = pick_metric({"cvssMetricV31": [v31(6.1, "MEDIUM", "Secondary")]})
    assert cna_only["severity"] == "medium" and cna_only["source_type"] == "Secondary"
    v2 = pick_metric({"cvssMetricV2": [{"type": "Primary", "cvssData": {"version": "2.0", "baseScore": 7.5},
                                        "baseSeverity": "HIGH"}]})
    assert v2["severity"] == "high" and v2["version"] == "2.0"  # v2 keeps baseSeverity outside cvssData
    assert pick_metric({}) is None

    # The real record: v3.1 (NVD, Primary) wins over v2.
    real = json.loads((FIXTURES / "nvd" / "nvdlib-CVE-2021-26855.json").read_text())["vulnerabilities"][0]["cve"]
    item = cve_item(real)
    assert item and item.extra["severity"] == "critical" and item.extra["cvss_version"] == "3.1"
    assert item.extra["kev"] and "exchange server" in item.extra["products"]
    blocks = json.dumps(render(item, "NVD").to_json())
    assert "Critical 9.8 (CVSS 3.1)" in blocks and "CISA KEV" in blocks


def affects(record: dict[str, object]) -> str:
    item = cve_item(record)
    assert item
    [text] = [f["text"] for b in render(item, "NVD").blocks for f in b.get("fields", [])
              if f["text"].startswith("*Affects*\n")]
    return text.removeprefix("*Affects*\n")


def test_affects_names_only_vendor_product_pairs_that_exist() -> None:
    # The real ProxyLogon record, with a second Microsoft product and another vendor's product of the same name:
    # microsoft:exchange_server, microsoft:sharepoint_server, acme:exchange_server. There is no acme sharepoint.
    real = json.loads((FIXTURES / "nvd" / "nvdlib-CVE-2021-26855.json").read_text())["vulnerabilities"][0]["cve"]
    matches = real["configurations"][0]["nodes"][0]["cpeMatch"]
    assert {m["criteria"].split(":")[3:5] == ["microsoft", "exchange_server"] for m in matches} == {True}

    def cpe(vendor: str, product: str, vulnerable: bool = True) -> dict[str, object]:
        return {"vulnerable": vulnerable, "criteria": f"cpe:2.3:a:{vendor}:{product}:2019:*:*:*:*:*:*:*"}

    crafted = {**real, "configurations": [{"nodes": [{"operator": "OR", "negate": False, "cpeMatch": [
        *matches, cpe("microsoft", "sharepoint_server"), cpe("acme", "exchange_server"),
        cpe("acme", "sharepoint_server", vulnerable=False)]}]}]}
    assert affects(crafted) == "microsoft exchange server, sharepoint server; acme exchange server"

    many = {**real, "configurations": [{"nodes": [{"operator": "OR", "negate": False, "cpeMatch": [
        cpe("acme", f"tool_{n}") for n in range(7)] + [cpe("zeta", "tool_0")]}]}]}
    assert affects(many) == "acme tool 0, tool 1, tool 2, tool 3, tool 4 and 3 more"  # five pairs shown, as before
    lots = {**real, "configurations": [{"nodes": [{"operator": "OR", "negate": False, "cpeMatch": [
        cpe("acme", f"tool_{n}") for n in range(300)]}]}]}
    assert affects(lots).endswith("tool 4 and 295 more")  # counted in full, though only 20 pairs are kept
    assert affects(real) == "microsoft exchange server"


def test_security_filters() -> None:
    unscored = cve_item(synthetic("CVE-2026-1", description="A flaw in Acme Widget Server allows RCE")["cve"])
    high = cve_item(synthetic("CVE-2026-2", metrics={"cvssMetricV31": [v31(8.8, "HIGH", "Secondary")]},
                              description="Overflow in libfoo")["cve"])
    assert unscored and high
    assert not evaluate(Filter(min_severity="critical"), high).passed
    assert evaluate(Filter(min_severity="high"), high).passed
    assert evaluate(Filter(min_severity="high"), unscored).passed  # unscored included unless said otherwise
    assert not evaluate(Filter(min_severity="high", include_unscored=False), unscored).passed
    assert not evaluate(Filter(min_score=9.0), high).passed
    # Most new CVEs have no CPE data: vendor/product names are also looked for in the description.
    assert evaluate(Filter(products=("widget server",)), unscored).passed
    assert not evaluate(Filter(products=("widget server",)), high).passed
    assert not evaluate(Filter(kev_only=True), high).passed
    assert evaluate(Filter(include=("libfoo",)), high).passed


def test_vendor_and_product_filters_see_every_cpe_of_a_huge_record() -> None:
    # Log4Shell-sized records name dozens of vendors; the team's own can come after the 20 the message shows.
    real = json.loads((FIXTURES / "nvd" / "nvdlib-CVE-2021-26855.json").read_text())["vulnerabilities"][0]["cve"]
    huge = {**real, "configurations": [{"nodes": [{"operator": "OR", "negate": False, "cpeMatch": [
        {"vulnerable": True, "criteria": f"cpe:2.3:a:vendor_{n}:product_{n}:1.0:*:*:*:*:*:*:*"}
        for n in range(40)]}]}]}
    item = cve_item(huge)
    assert item
    assert evaluate(Filter(vendors=("vendor 33",)), item).passed
    assert evaluate(Filter(products=("product 39",)), item).passed
    assert not evaluate(Filter(products=("product 40",)), item).passed
    assert affects(huge).endswith("product 4 and 35 more")  # the message still shows five


def test_deeply_nested_json_is_a_clear_error_not_a_traceback(relay: Relay, feed_server: FeedServer) -> None:
    nested = b'{"vulnerabilities": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    feed_server.set("/kev.json", nested, content_type="application/json")
    relay.configure(channels=SECURITY, feeds=[{"name": "CISA KEV", "type": "kev", "url": feed_server.url("/kev.json"),
                                               "channels": ["security"]}])
    result = relay("once")
    assert result.code == 1
    assert "feed 'CISA KEV': the KEV catalog is not valid JSON (nested too deeply)" in result.err
    assert "Traceback" not in result.output and "internal error" not in result.output
    with pytest.raises(FetchError, match="nested too deeply"):  # an NVD page like it: retried, then the poll fails
        nvd_json(nested)


def test_a_cve_modified_while_nvd_pages_are_read_does_not_hide_another(relay: Relay, feed_server: FeedServer,
                                                                       fake_slack: FakeSlack) -> None:
    # Between two pages, NVD modifies a CVE of page 1 again: it leaves the window (its lastModified is now after
    # lastModEndDate) and every later CVE moves up one place, so the first CVE of page 2 would be skipped.
    records = fixture_records()
    nvd = FakeNVD(feed_server, records, page_size=20, api_key=API_KEY)
    relay.configure(channels=SECURITY, feeds=[nvd_feed(nvd.url)])
    assert relay("once").code == 0
    modified = records[5]

    def modify_once(start: int) -> None:
        if start == 20 and modified in nvd.records:
            nvd.records = [r for r in nvd.records if r is not modified]

    nvd.before_page = modify_once
    result = relay("once")
    assert result.code == 0, result.output
    assert sorted(posted_cves(fake_slack)) == sorted(r["cve"]["id"] for r in records)
    assert records[20]["cve"]["id"] in posted_cves(fake_slack)


def test_cpe_names_with_escaped_characters_read_as_the_product_is_called() -> None:
    # NVD's CPE names escape punctuation: notepad\+\+, swiftnio_http\/2. A team writes "notepad++".
    record = synthetic("CVE-2026-3", metrics={"cvssMetricV31": [v31(7.8, "HIGH")]})["cve"]
    record["configurations"] = [{"nodes": [{"operator": "OR", "negate": False, "cpeMatch": [
        {"vulnerable": True, "criteria": r"cpe:2.3:a:notepad-plus-plus:notepad\+\+:*:*:*:*:*:*:*:*"},
        {"vulnerable": True, "criteria": r"cpe:2.3:a:apple:swiftnio_http\/2:1.0:*:*:*:*:*:*:*"}]}]}]
    item = cve_item(record)
    assert item
    assert evaluate(Filter(products=("notepad++",)), item).passed
    assert evaluate(Filter(products=("swiftnio http/2",)), item).passed
    assert affects(record) == "notepad-plus-plus notepad++; apple swiftnio http/2"


def test_an_invalid_api_key_is_reported_as_the_key_not_the_url(relay: Relay, feed_server: FeedServer) -> None:
    # Real NVD answers a wrong or revoked key with 404 and `message: Invalid apiKey.`, not with a 403.
    nvd = FakeNVD(feed_server, fixture_records())
    relay.configure(channels=SECURITY, feeds=[nvd_feed(nvd.url)])
    assert relay("once").code == 0
    nvd.bad_request = "Invalid apiKey."
    result = relay("once")
    assert result.code == 1
    assert "NVD rejected the API key in $NVD_API_KEY: Invalid apiKey." in result.err
    assert "check the feed's url" not in result.output and API_KEY not in result.output
    assert len(nvd.queries) == 1  # not retried: a key is not fixed by asking again


def test_throttling_advice_says_whether_the_key_is_set(tmp_path: Path, feed_server: FeedServer,
                                                       fake_slack: FakeSlack) -> None:
    # api_key_env names a variable the service's environment lacks: the advice is to set it, by name.
    relay = Relay(tmp_path, fake_slack.api_url)
    nvd = FakeNVD(feed_server, fixture_records())
    relay.configure(channels=SECURITY, feeds=[nvd_feed(nvd.url)])
    assert relay("once").code == 0
    nvd.failures.extend([403, 403, 403])
    result = relay("once")
    assert result.code == 1
    assert "HTTP 403" in result.err and "throttled: $NVD_API_KEY is not set" in result.err


@pytest.mark.parametrize("source, label", [
    ("134c704f-9b21-4f2e-91b3-4a467353bcc0", "🔴 Critical 9.8 (CVSS 3.1, CISA-ADP score)"),
    ("security@apache.org", "🔴 Critical 9.8 (CVSS 3.1, CNA score)"),
])
def test_a_secondary_score_says_whose_it_is(source: str, label: str) -> None:
    """Most new CVEs carry no NVD score; their Secondary one is the CNA's or CISA's (ADP), and a responder weighs
    a vendor's own score differently from CISA's."""
    metric = {**v31(9.8, "CRITICAL", "Secondary"), "source": source}
    item = cve_item(synthetic("CVE-2026-1234", metrics={"cvssMetricV31": [metric]})["cve"])
    assert item is not None
    assert label in json.dumps(render(item, "NVD").to_json(), ensure_ascii=False)
