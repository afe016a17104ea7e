"""Secrets removed from log lines.

Secrets can reach a log line by many routes (an exception message quoting a URL with the
bot token, a Redis URL with its password, a traceback's locals), so they are removed from
the final formatted text, tracebacks included, rather than at each call site.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = ["REDACTED", "RedactingFormatter", "secret_parts"]

REDACTED = "***"


class RedactingFormatter(logging.Formatter):
    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__(fmt)
        # longest first, so a secret containing another is removed whole
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))

    def redact(self, line: str) -> str:
        for secret in self._secrets:
            if secret in line:
                line = line.replace(secret, REDACTED)
        return line


def secret_parts(token: str, api_key: str, redis_url: str | None) -> list[str]:
    """The strings that must never be logged: whole secrets and their sensitive parts."""
    parts = [token, api_key]
    # The part after the colon is the actual secret of a bot token; the id is public.
    if ":" in token:
        parts.append(token.split(":", 1)[1])
    # zhipuai keys are "<id>.<secret>"
    if "." in api_key:
        parts.append(api_key.split(".", 1)[1])
    if redis_url:
        password = urlsplit(redis_url).password
        if password:
            parts.append(password)
    return parts
