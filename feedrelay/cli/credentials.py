"""Secrets as systemd credentials: with `LoadCredential=NAME:/path` in the unit, systemd puts the file at
``$CREDENTIALS_DIRECTORY/NAME`` (readable by the service alone, never in its environment), and feedrelay reads it
as the value of the environment variable NAME. So SLACK_BOT_TOKEN, a channel's webhook_env variable and
NVD_API_KEY work the same whichever way they arrive, and are redacted from logs the same way."""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from pathlib import Path

DIRECTORY_ENV = "CREDENTIALS_DIRECTORY"
MAX_CREDENTIAL = 64 * 1024  # a token, a URL or a key is far smaller; a wrong file must not be read whole
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class CredentialError(Exception):
    """A credential that cannot be used, phrased for the person who wrote the unit file (never quoting a value)."""


def read_credentials(directory: Path) -> tuple[dict[str, str], list[str]]:
    """NAME → value for each credential file named like an environment variable, and a note per file skipped."""
    values: dict[str, str] = {}
    notes: list[str] = []
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        raise CredentialError(f"${DIRECTORY_ENV} ({directory}): cannot read the directory: {exc.strerror}") from None
    for path in entries:
        if not _NAME.fullmatch(path.name):
            notes.append(f"${DIRECTORY_ENV}/{path.name}: ignored, not the name of an environment variable (name the "
                         f"credential after the variable it holds, e.g. LoadCredential=SLACK_BOT_TOKEN:/etc/…)")
            continue
        try:
            with path.open("rb") as f:
                data = f.read(MAX_CREDENTIAL + 1)
        except OSError as exc:
            raise CredentialError(f"${DIRECTORY_ENV}/{path.name}: cannot read: {exc.strerror}") from None
        if len(data) > MAX_CREDENTIAL:
            raise CredentialError(f"${DIRECTORY_ENV}/{path.name}: larger than {MAX_CREDENTIAL // 1024} KiB, which no "
                                  "token, webhook URL or API key is; check LoadCredential= points at the right file")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise CredentialError(f"${DIRECTORY_ENV}/{path.name}: not UTF-8 text; it should hold the secret "
                                  "itself, as you would write it after NAME= in an environment file") from None
        # A file written with echo ends in a newline: the secret is what is around it, as for a variable.
        values[path.name] = text.strip()
    return values, notes


def apply_credentials(environ: MutableMapping[str, str]) -> list[str]:
    """Put the credentials of $CREDENTIALS_DIRECTORY into ``environ``; returns notes to show. A variable given
    both ways is an error: which of two values is the live one should not be a guess."""
    directory = environ.get(DIRECTORY_ENV, "")
    if not directory:
        return []
    values, notes = read_credentials(Path(directory))
    for name, value in values.items():
        if environ.get(name, "").strip():
            raise CredentialError(f"${name} is set in the environment and as a credential (${DIRECTORY_ENV}/{name}); "
                                  f"keep one: remove it from the environment file, or drop LoadCredential={name}:…")
        environ[name] = value
    return notes

