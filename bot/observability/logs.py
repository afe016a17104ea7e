"""Logging set-up: the level, and text or JSON lines, both with secret redaction
(`bot.observability.redaction`)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from bot.observability.logs_json import JsonFormatter
from bot.observability.redaction import RedactingFormatter

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
