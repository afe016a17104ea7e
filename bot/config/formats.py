"""What a bot token and a Redis URL must look like, checked when the settings are read.

Both are secrets, so no message here quotes the value. Checking at load time turns a
typo into one configuration line instead of a traceback from aiogram (the token) or a
silent fallback to database 0 in redis-py (a URL whose database is not a number).
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

from pydantic import AfterValidator, SecretStr

__all__ = ["BotToken", "check_bot_token", "check_redis_url"]

# What @BotFather hands out: the bot's numeric id, a colon, then the secret part.
_TOKEN_RE = re.compile(r"[0-9]+:[A-Za-z0-9_-]+")

_REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel")


def check_bot_token(token: SecretStr) -> SecretStr:
    value = token.get_secret_value()
    if any(char.isspace() for char in value):
        # most often the end of a line in .env or a copy from a chat window
        raise ValueError("contains a space or a line break; copy the token again")
    if not _TOKEN_RE.fullmatch(value):
        raise ValueError("should look like <bot id>:<secret>, as @BotFather gives it")
    return token


def check_redis_url(url: str, mode: str) -> None:
    """Raise ValueError when REDIS_URL cannot be what was meant; `mode` is [redis] mode."""
    parts = urlsplit(url)
    if parts.scheme not in _REDIS_SCHEMES:
        raise ValueError("should start with redis://, rediss://, unix:// or redis+sentinel://")
    db_values = parse_qs(parts.query).get("db", [])
    path = [segment for segment in parts.path.split("/") if segment]
    if parts.scheme == "redis+sentinel" or (mode == "sentinel" and parts.scheme != "unix"):
        db_values += path[1:2]  # host1:26379,host2/<master name>[/db]
    elif parts.scheme != "unix":  # a socket's path is the file; its db is ?db=
        try:
            parts.port  # noqa: B018 - the property raises on a port that is not a number
        except ValueError:
            raise ValueError("the port should be a number") from None
        if len(path) > 1:
            raise ValueError("should be redis://[:password@]host[:port][/db]")
        db_values += path
    for db in db_values:
        if not db.isdigit():
            raise ValueError("the database should be a number, e.g. redis://host:6379/0")


BotToken = Annotated[SecretStr, AfterValidator(check_bot_token)]
