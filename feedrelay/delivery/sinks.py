"""Where messages go: Slack via a bot token, an incoming webhook, or the terminal.

Sinks know nothing of feeds: they get a rendered message and answer with an :class:`Outcome` that
tells the deliverer what to do next. Secrets stay inside the sink objects and never reach an error.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from feedrelay.config import Channel, Config
from feedrelay.ingest.fetch import retry_after_seconds

log = logging.getLogger(__name__)

# Errors that no retry will fix until a person acts; the channel is marked failing and its rows wait.
PERMANENT = {
    "channel_not_found", "not_in_channel", "is_archived", "channel_is_archived", "invalid_auth", "not_authed",
    "account_inactive", "token_revoked", "token_expired", "no_permission", "missing_scope", "restricted_action",
    "ekm_access_denied", "team_access_not_granted", "org_login_required", "no_service", "no_service_id",
    "no_team", "team_disabled", "action_prohibited", "posting_to_general_channel_denied", "invalid_token",
    "restricted_action_read_only_channel", "restricted_action_thread_only_channel", "not_allowed_token_type",
    "access_denied", "accesslimited", "enterprise_is_restricted", "two_factor_setup_required", "user_not_found",
    "deprecated_endpoint", "method_deprecated",
}
# Errors about this one message; retried once as plain text, then the row is marked failed.
MESSAGE_ERRORS = {"invalid_blocks", "invalid_blocks_format", "msg_too_long", "no_text", "too_many_attachments",
                  "invalid_payload", "invalid_arguments", "invalid_attachments"}
# chat.update errors about the one message (deleted, too old, not ours): the edit becomes a reply in its thread.
EDIT_REFUSED = {"message_not_found", "cant_update_message", "edit_window_closed"}
# The error a rate-limited row keeps: the outbox finds Slack's pauses by it after a restart.
RATE_LIMITED = "rate limited by Slack (429)"
HINTS = {
    "channel_not_found": "check the channel name/ID in feeds.toml and that the bot can see it",
    "not_in_channel": "invite the bot to the channel (/invite @yourbot) or grant chat:write.public",
    "is_archived": "the channel is archived; unarchive it or route the feed elsewhere",
    "channel_is_archived": "the channel is archived; unarchive it or route the feed elsewhere",
    "invalid_auth": "the bot token is wrong or revoked; set a valid xoxb- token in the environment",
    "token_revoked": "the bot token was revoked; install the app again and set the new token",
    "missing_scope": "the Slack app needs the chat:write scope",
    "no_service": "the webhook URL is no longer valid; create a new incoming webhook",
    "restricted_action_read_only_channel": "only admins may post in this channel; let the app post there, or "
                                           "route the feed elsewhere",
    "restricted_action": "a workspace setting keeps the app from posting; ask a Slack admin",
    "not_allowed_token_type": "the token is not a bot token; set the app's xoxb- token (not an xapp- one)",
}

# A webhook posts to the one channel it was made for: advice about names in feeds.toml or the bot does not apply.
_NEW_WEBHOOK = "create a new incoming webhook and put its URL in the channel's webhook_env variable"
WEBHOOK_HINTS = {
    "channel_not_found": f"the webhook's channel was deleted; {_NEW_WEBHOOK}",
    "channel_is_archived": f"the webhook's channel is archived; unarchive it, or {_NEW_WEBHOOK}",
    "action_prohibited": f"a Slack admin restricted posting in the webhook's channel; ask them, or {_NEW_WEBHOOK}",
    "no_service": f"the webhook URL is no longer valid; {_NEW_WEBHOOK}",
    "no_team": f"the webhook's workspace is gone; {_NEW_WEBHOOK}",
    "team_disabled": f"the webhook's workspace is disabled; {_NEW_WEBHOOK}",
    "invalid_token": f"the webhook URL is no longer valid; {_NEW_WEBHOOK}",
}


@dataclass(frozen=True)
class Outcome:
    kind: str  # sent | retry | permanent | reject | edit_refused
    ts: str = ""
    error: str = ""
    retry_after: float | None = None
    channel_id: str = ""  # the channel ID chat.postMessage answered with (chat.update needs it, not a #name)

    @staticmethod
    def sent(ts: str, channel_id: str = "") -> Outcome:
        return Outcome("sent", ts=ts, channel_id=channel_id)


class Sink(Protocol):
    """Where a channel's messages go. ``send`` answers with an :class:`Outcome` (sent, retry, permanent, reject)
    and never raises for a delivery problem. Register a factory for it by kind with
    :func:`feedrelay.register_sink`."""

    pause_key: str  # sinks sharing a key share Slack's rate limit (one workspace)
    description: str

    def threads(self, ts: str) -> bool:
        """Whether it can reply in the thread of (and edit) the message sent as ``ts``: a bot can, for a message it
        posted to Slack; a webhook never can."""
        ...

    async def send(self, message: dict[str, Any], *, plain: bool = False, thread_ts: str = "",
                   broadcast: bool = False) -> Outcome: ...

    async def update(self, channel_id: str, ts: str, message: dict[str, Any], *, plain: bool = False) -> Outcome: ...


def explain(error: str, hints: Mapping[str, str] = HINTS) -> str:
    hint = hints.get(error)
    return f"{error} ({hint})" if hint else error


def _classify(status: int, error: str, retry_after: float | None, hints: Mapping[str, str] = HINTS) -> Outcome:
    if status == 429 or error == "ratelimited":
        return Outcome("retry", error=RATE_LIMITED, retry_after=retry_after or 1.0)
    if error in PERMANENT or status in (401, 403, 404, 410):
        return Outcome("permanent", error=explain(error or f"HTTP {status}", hints))
    if error in MESSAGE_ERRORS or status == 400:
        return Outcome("reject", error=error or f"HTTP {status}")
    return Outcome("retry", error=error or f"HTTP {status}")


def _payload(message: dict[str, Any], channel: Channel, plain: bool) -> dict[str, Any]:
    payload: dict[str, Any] = {"text": message.get("text", ""), "unfurl_links": channel.unfurl,
                               "unfurl_media": channel.unfurl}
    if not plain and message.get("blocks"):
        payload["blocks"] = message["blocks"]
    # Never link_names or parse=full: they turn "@channel" in relayed text into a real mention.
    return payload


class SlackBotSink:
    """chat.postMessage through slack-sdk's AsyncWebClient."""

    def __init__(self, channel: Channel, client: Any, workspace: str) -> None:
        self.channel = channel
        self.client = client
        self.pause_key = workspace
        self.description = f"Slack {channel.target}"

    def threads(self, ts: str) -> bool:
        return bool(_SLACK_TS.fullmatch(ts))  # (not a message printed to the terminal before a token was set)

    async def send(self, message: dict[str, Any], *, plain: bool = False, thread_ts: str = "",
                   broadcast: bool = False) -> Outcome:
        payload = _payload(message, self.channel, plain)
        if thread_ts:
            payload["thread_ts"] = thread_ts
            if broadcast:
                payload["reply_broadcast"] = True
        return await self._call(self.client.chat_postMessage, channel=self.channel.target, **payload)

    async def update(self, channel_id: str, ts: str, message: dict[str, Any], *, plain: bool = False) -> Outcome:
        payload = _payload(message, self.channel, plain)
        for key in ("unfurl_links", "unfurl_media"):  # (not chat.update arguments)
            payload.pop(key)
        channel_id = channel_id or (self.channel.target if _CHANNEL_ID.fullmatch(self.channel.target) else "")
        if not channel_id:  # (a message sent before feedrelay kept the channel ID: chat.update refuses a #name)
            return Outcome("edit_refused", error="no channel ID known for the message")
        outcome = await self._call(self.client.chat_update, channel=channel_id, ts=ts, **payload)
        if outcome.kind != "sent" and outcome.error.split(" ", 1)[0] in EDIT_REFUSED:
            return Outcome("edit_refused", error=outcome.error)
        return outcome

    async def _call(self, method: Any, **kwargs: Any) -> Outcome:
        from slack_sdk.errors import SlackApiError

        try:
            resp = await method(**kwargs)
            return Outcome.sent(str(resp.get("ts", "")), str(resp.get("channel", "") or ""))
        except SlackApiError as exc:
            r = exc.response
            data = r.data if isinstance(r.data, dict) else {}
            error = str(data.get("error", ""))
            if error in EDIT_REFUSED:
                return Outcome("edit_refused", error=error)
            return _classify(r.status_code, error,
                             retry_after_seconds(r.headers.get("Retry-After") or r.headers.get("retry-after")))
        except (TimeoutError, OSError) as exc:
            # The post may have landed: retrying can duplicate this one message, which beats losing it.
            return Outcome("retry", error=f"network: {type(exc).__name__}: {str(exc)[:200]}".rstrip(": "))
        except Exception as exc:  # aiohttp.ClientError and friends
            return Outcome("retry", error=f"network: {type(exc).__name__}")


_SLACK_TS = re.compile(r"\d{9,}\.\d{1,9}")
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{6,}")
_ERROR_CODE = re.compile(r"[a-z][a-z0-9_]{0,79}")


class WebhookSink:
    """An incoming webhook through slack-sdk's AsyncWebhookClient (the URL is the secret)."""

    def __init__(self, channel: Channel, client: Any) -> None:
        self.channel = channel
        self.client = client
        self.pause_key = f"webhook:{channel.name}"
        self.description = f"webhook ${channel.webhook_env}"

    def threads(self, ts: str) -> bool:
        return False  # an incoming webhook can only post: replies and edits arrive as posts

    async def update(self, channel_id: str, ts: str, message: dict[str, Any], *, plain: bool = False) -> Outcome:
        return Outcome("edit_refused", error="a webhook cannot edit a message")

    async def send(self, message: dict[str, Any], *, plain: bool = False, thread_ts: str = "",
                   broadcast: bool = False) -> Outcome:
        try:
            resp = await self.client.send_dict(_payload(message, self.channel, plain))
        except (TimeoutError, OSError) as exc:
            return Outcome("retry", error=f"network: {type(exc).__name__}")
        except Exception as exc:
            return Outcome("retry", error=f"network: {type(exc).__name__}")
        body = (resp.body or "").strip()
        # Webhook clients do not raise on 4xx: success is exactly 200 + "ok".
        if resp.status_code == 200 and body == "ok":
            return Outcome.sent("webhook")
        headers = {k.lower(): v for k, v in (resp.headers or {}).items()}
        # Slack answers error codes such as no_service; any other text (a proxy's or a gateway's error page)
        # may quote the request, and the webhook's path is its secret: such an answer is told by its status.
        error = body if _ERROR_CODE.fullmatch(body) else ""
        return _classify(resp.status_code, error, retry_after_seconds(headers.get("retry-after")), WEBHOOK_HINTS)


class ConsoleSink:
    """Prints what would be posted: the first run works before any Slack set-up."""

    def __init__(self, channel: Channel, stream: TextIO | None = None) -> None:
        self.channel = channel
        self.stream = stream
        self.pause_key = f"console:{channel.name}"
        self.description = "terminal"

    def threads(self, ts: str) -> bool:
        return True

    async def send(self, message: dict[str, Any], *, plain: bool = False, thread_ts: str = "",
                   broadcast: bool = False) -> Outcome:
        return self._print(format_console(self.channel.name, message, reply=bool(thread_ts)))

    async def update(self, channel_id: str, ts: str, message: dict[str, Any], *, plain: bool = False) -> Outcome:
        return self._print(format_console(self.channel.name, message, edit=True))

    def _print(self, text: str) -> Outcome:
        stream = self.stream or sys.stdout
        stream.write(text)
        stream.flush()
        return Outcome.sent(f"console-{time.time():.6f}")


def format_console(channel: str, message: dict[str, Any], *, reply: bool = False, edit: bool = False) -> str:
    """A channel's heading, then the message's own terminal text (rendered with it: see feedrelay.render). A reply
    is indented under a line naming the message it answers; an edit says which message now reads so."""
    text = message.get("plain")
    if not isinstance(text, str):
        text = message.get("text", "")  # (a row queued before messages carried their plain text)
    parent = str(message.get("parent") or "its first message")
    if reply:
        text = f"↳ reply in thread of {parent}\n" + "\n".join("  " + line for line in text.splitlines())
    elif edit:  # (the reply before it said what changed: the first line of the new badge is enough here)
        text = f"✎ {parent}: first message edited to: {(text.splitlines() or [''])[0]}"
    return f"── #{channel} " + "─" * max(0, 60 - len(channel)) + "\n" + text + "\n\n"


class Sinks:
    """Builds one sink per configured channel and owns the shared HTTP session."""

    def __init__(self, config: Config, environ: Mapping[str, str] = os.environ, stream: TextIO | None = None,
                 timeout: float = 30.0) -> None:
        self.config = config
        self.environ = environ
        self.stream = stream
        self.timeout = timeout
        self._session: Any = None
        self.by_channel: dict[str, Sink] = {}
        self.notices: list[str] = []

    async def open(self) -> dict[str, Sink]:
        import aiohttp

        from feedrelay.registry import SinkContext, build_sink

        # One shared session: without it slack-sdk opens a new aiohttp session for every call.
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        context = SinkContext(self.config, self.environ, self.stream, self.timeout, session=self._session,
                              notices=self.notices)
        token = self.environ.get(self.config.slack.token_env, "").strip()
        if token:
            from slack_sdk.web.async_client import AsyncWebClient

            # retry_handlers=[]: the outbox owns retries, so each attempt is visible and paced.
            context.slack = AsyncWebClient(token=token, base_url=self.config.slack.api_url, session=self._session,
                                           timeout=int(self.timeout), retry_handlers=[])
        # Each channel's sink comes from the factory registered for its kind (feedrelay.registry).
        for name, ch in self.config.channels.items():
            self.by_channel[name] = build_sink(ch, context)
        return self.by_channel

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            await asyncio.sleep(0)  # let aiohttp close its transports
