"""The shipped deployment files work with this feedrelay: the systemd unit's and the Docker image's environment
are run through the real CLI (neither systemd nor Docker runs here), and the Slack manifest is one Slack accepts."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import time
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.cli import Relay, wait_until

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


def _dockerfile_runtime_stage() -> str:
    return (ROOT / "Dockerfile").read_text().replace("\\\n", " ").rsplit("\nFROM ", 1)[1]


def test_image_health_check_runs_feedrelay_health_which_tracks_the_daemon(tmp_path: Path) -> None:
    """The HEALTHCHECK's command, run with the image's environment: unhealthy before the daemon starts, healthy
    while it runs (no [metrics], no Slack reachable: it needs neither), unhealthy while its event loop is stuck
    and once it has stopped."""
    [line] = [x for x in _dockerfile_runtime_stage().splitlines() if x.startswith("HEALTHCHECK ")]
    options, _, command = line.partition(" CMD ")
    assert re.search(r"--interval=\d+s", options) and re.search(r"--start-period=\d+s", options)
    argv = json.loads(command)  # exec form: no shell needed in the image
    assert argv[0] == "feedrelay"

    relay = Relay(tmp_path, api_url="http://127.0.0.1:9/api/", token=None)  # Slack unreachable
    relay.configure(channels={"readings": {"console": True}},
                    feeds=[{"name": "Blog", "url": "http://127.0.0.1:9/feed.xml", "channels": ["readings"]}])
    relay.env.update({k: v for k, v in image_environment().items() if k.startswith("FEEDRELAY_")},
                     FEEDRELAY_CONFIG=str(relay.config), FEEDRELAY_DB=str(relay.db))

    def health(*extra: str) -> subprocess.CompletedProcess[str]:
        cmd = [relay.cmd()[0], "-m", "feedrelay", *argv[1:], *extra]  # (as the image's PATH finds it)
        return subprocess.run(cmd, env=relay.env, capture_output=True, text=True, timeout=60)

    before = health()
    assert before.returncode == 1 and "no `feedrelay run` has used" in before.stderr
    daemon = relay.start()
    try:
        wait_until(lambda: "feedrelay running" in daemon.log(), timeout=30)
        alive = health()
        assert alive.returncode == 0, alive.stderr + daemon.log()
        assert f"(pid {daemon.proc.pid}) answered" in alive.stdout
        daemon.proc.send_signal(signal.SIGSTOP)  # what a blocked event loop (a runaway regex, a hung call) looks like
        time.sleep(2.5)
        stuck = health("--max-age", "2s")
        assert stuck.returncode == 1 and "has not answered for" in stuck.stderr, stuck.stderr
        daemon.proc.send_signal(signal.SIGCONT)
        wait_until(lambda: health("--max-age", "4s").returncode == 0, timeout=20, interval=0.2)
    finally:
        daemon.proc.send_signal(signal.SIGCONT)
        daemon.stop()
    after = health()
    assert after.returncode == 1 and f"(pid {daemon.proc.pid}) is not running" in after.stderr


def test_image_base_is_pinned_uv_is_pinned_and_labels_follow_oci() -> None:
    text = (ROOT / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S*)$", text, re.M))
    assert re.fullmatch(r"3\.11\.\d+-slim-\w+", args["PYTHON_TAG"]), "an exact Python version, not a moving tag"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", args["PYTHON_DIGEST"])
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["python:${PYTHON_TAG}@${PYTHON_DIGEST}"] * 2
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["UV_VERSION"]) and '"uv==${UV_VERSION}"' in text
    labels = dict(re.findall(r"(org\.opencontainers\.image\.[\w.]+)=\"([^\"]*)\"", _dockerfile_runtime_stage()))
    for key in ("title", "description", "version", "revision", "source", "licenses", "base.name", "base.digest"):
        assert f"org.opencontainers.image.{key}" in labels, key
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert args["VERSION"] == pyproject["version"]  # the label says the version the image installs
    assert labels["org.opencontainers.image.licenses"] == pyproject["license"]


def test_compose_file_follows_the_compose_spec_and_keeps_data_config_secrets_and_metrics_right() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    spec = json.loads((ROOT / "tests" / "fixtures" / "deploy" / "compose-spec.json").read_text())
    jsonschema.Draft7Validator(spec).validate(compose)  # what `docker compose config` checks first
    [service] = compose["services"].values()
    assert service["build"] == "."
    # The named volume at the image's database directory, declared at top level.
    assert "feedrelay-data:/data" in service["volumes"] and "feedrelay-data" in compose["volumes"]
    # The config as a directory (a single-file bind mount never sees an editor's save), read-only, where the
    # image's FEEDRELAY_CONFIG looks.
    [config] = [v for v in service["volumes"] if v.split(":")[1] == "/config"]
    source, target, mode = config.split(":")
    assert not source.endswith(".toml") and mode == "ro"
    assert Path(image_environment()["FEEDRELAY_CONFIG"]).parent == Path(target)
    # The token from the environment of `docker compose`, by name only (a value here would be a secret in git).
    assert "SLACK_BOT_TOKEN" in service["environment"]
    # /metrics has no authentication: published on the host's loopback only.
    assert service["ports"] == ["127.0.0.1:9464:9464"]
