"""Filters that run on the event loop.

aiogram calls a synchronous filter (a magic filter such as ``F.text`` included) through
``asyncio.to_thread``: every update would queue for asyncio's default executor, a handful
of threads on a small machine, several times over. These cheap checks run inline instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram.types import TelegramObject
from aiogram.utils.magic_filter import MagicFilter

InlineFilter = Callable[[TelegramObject], Awaitable[Any]]


def inline(check: MagicFilter | Callable[[Any], Any]) -> InlineFilter:
    """The same check as an async callable, so aiogram awaits it on the loop."""
    resolve = check.resolve if isinstance(check, MagicFilter) else check

    async def run_inline(event: TelegramObject) -> Any:
        return resolve(event)

    return run_inline
