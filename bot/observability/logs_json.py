"""JSON log lines for production, with the same secret redaction as the text format.

One object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, any
``extra={...}`` fields of the call, and ``exception`` when there is a traceback. Secrets
are removed from every string before encoding (JSON escaping could otherwise hide a
secret holding a quote or a backslash from the final check) and from the final line.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from bot.observability.redaction import RedactingFormatter

__all__ = ["JsonFormatter", "resolve_log_format"]

LogFormat = Literal["json", "text"]

# Attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(RedactingFormatter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__("%(message)s", secrets)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": self.redact(record.getMessage()),
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD and name not in entry:
                entry[name] = self._clean(value)
        if record.exc_info:
            entry["exception"] = self.redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = self.redact(self.formatStack(record.stack_info))
        return self.redact(json.dumps(entry, ensure_ascii=False, default=str))

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, bool | int | float) or value is None:
            return value
        if isinstance(value, dict):
            return {str(k): self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return self.redact(str(value))


def resolve_log_format(setting: str, env: str | None, stream: TextIO = sys.stderr) -> LogFormat:
    """The format to use: LOG_FORMAT (env) over the setting; "auto" is text on a terminal.

    Raises ValueError naming LOG_FORMAT when it holds something else.
    """
    chosen = (env or setting).strip().lower()
    if chosen not in ("auto", "json", "text"):
        raise ValueError("LOG_FORMAT: should be 'json', 'text' or 'auto'")
    if chosen == "auto":
        return "text" if stream.isatty() else "json"
    return "json" if chosen == "json" else "text"
