"""The shipped deployment files work with this feedrelay: the systemd unit's and the Docker image's environment
are run through the real CLI (neither systemd nor Docker runs here), and the Slack manifest is one Slack accepts."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.cli import Relay

ROOT = Path(__file__).resolve().parent.parent


def unit_environment() -> dict[str, str]:
    env = {}
    for line in (ROOT / "deploy" / "feedrelay.service").read_text().splitlines():
        if line.startswith("Environment="):
            name, _, value = line.removeprefix("Environment=").partition("=")
            env[name] = value
    return env


def image_environment() -> dict[str, str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    runtime = text.rsplit("FROM ", 1)[1]  # the last stage is the image that runs
    env: dict[str, str] = {}
    for line in runtime.splitlines():
        if line.startswith("ENV "):
            env.update(dict(pair.split("=", 1) for pair in shlex.split(line[4:])))
    return env


@pytest.mark.parametrize("environment", [unit_environment, image_environment], ids=["systemd", "docker"])
def test_deployment_environment_points_feedrelay_at_its_files_and_requires_slack(tmp_path: Path,
                                                                                 environment) -> None:
    env = environment()
    config = tmp_path / "etc" / "feeds.toml"
    db = tmp_path / "state" / "feedrelay.db"
    config.parent.mkdir()
    config.write_text((ROOT / "feeds.toml").read_text())
    relay = Relay(tmp_path, api_url=None, token=None)
    relay.env.update({k: v for k, v in env.items() if k.startswith("FEEDRELAY_")})
    relay.env.update(FEEDRELAY_CONFIG=str(config), FEEDRELAY_DB=str(db))
    # Run without -c, as the service and the image do: the environment alone must find the files.
    cmd = [c for c in relay.cmd("check") if c not in ("-c", str(relay.config))]
    refused = subprocess.run(cmd, env=relay.env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2, refused.stderr
    assert "$SLACK_BOT_TOKEN is not set" in refused.stderr
    relay.env["SLACK_BOT_TOKEN"] = "xoxb-deploy-test"
    ok = subprocess.run(cmd, env=relay.env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"{config}: ok")


def test_systemd_unit_runs_the_daemon_from_the_venv_and_reloads_with_hup() -> None:
    unit = (ROOT / "deploy" / "feedrelay.service").read_text()
    assert re.search(r"^ExecStart=/opt/feedrelay/\.venv/bin/feedrelay run$", unit, re.M)
    assert re.search(r"^ExecReload=/bin/kill -HUP \$MAINPID$", unit, re.M)  # the daemon reloads on SIGHUP
    assert re.search(r"^StateDirectory=feedrelay$", unit, re.M)
    assert unit_environment()["FEEDRELAY_DB"].startswith("/var/lib/feedrelay/")


def test_slack_manifest_asks_for_what_feedrelay_uses_within_slacks_limits() -> None:
    manifest = json.loads((ROOT / "slack" / "manifest.json").read_text())
    info = manifest["display_information"]
    # Limits from Slack's manifest schema (slackapi/manifest-schema): a paste outside them is refused.
    assert 1 <= len(info["name"]) <= 35
    assert 1 <= len(info["description"]) <= 140
    assert 175 <= len(info["long_description"]) <= 4000
    assert re.fullmatch(r"#[0-9a-fA-F]{6}", info["background_color"])
    assert 1 <= len(manifest["features"]["bot_user"]["display_name"]) <= 80
    assert manifest["oauth_config"]["scopes"]["bot"] == ["chat:write"]  # chat.postMessage, nothing else
    assert manifest["settings"]["token_rotation_enabled"] is False  # feedrelay never refreshes its token
