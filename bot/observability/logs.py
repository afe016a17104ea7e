"""Logging set-up with secret redaction.

Secrets can reach a log line by many routes (an exception message quoting a URL with the
bot token, a Redis URL with its password, a traceback's locals), so they are removed from
the final formatted text, tracebacks included, rather than at each call site.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from urllib.parse import urlsplit

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


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def resolve_log_level(value: str | None) -> str:
    """LOG_LEVEL in any case ("debug" is DEBUG); raises ValueError naming LOG_LEVEL."""
    level = (value or "INFO").strip().upper()
    level = "WARNING" if level == "WARN" else level
    if level not in _LEVELS:
        raise ValueError("LOG_LEVEL: should be debug, info, warning, error or critical")
    return level


def setup_logging(level: str, secrets: Iterable[str], log_format: str = "text") -> None:
    """Log to stderr as readable text or, with ``log_format="json"``, one JSON object a line."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        from bot.observability.logs_json import JsonFormatter  # imports this module: import late

        handler.setFormatter(JsonFormatter(secrets))
    else:
        handler.setFormatter(
            RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets)
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at info level; aiogram logs each handled update.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
