"""Limits and usage in process memory, for a bot running without Redis.

Same semantics as the Redis store (sliding windows, refused messages not counted, one
notice per refusal, day and month counters that expire); it only holds for one process.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import replace

from bot.guards.quotas.base import (
    DAY_TTL,
    MONTH_TTL,
    NOTICE_INTERVAL,
    Board,
    Charge,
    Limits,
    Reason,
    Refusal,
    Scope,
    Totals,
    day_of,
    month_of,
    seconds_to_midnight,
)

__all__ = ["MemoryMeterStore"]

_Told = tuple[Reason, Scope]


class MemoryMeterStore:
    """`MeterStore` in dictionaries; methods never await, so each one is atomic."""

    def __init__(self) -> None:
        self._windows: dict[Scope, deque[float]] = {}
        self._told: dict[_Told, float] = {}
        # (scope, period) -> (expires at, totals)
        self._usage: dict[tuple[Scope, str], tuple[float, Totals]] = {}
        # (board, month) -> (expires at, tokens per member)
        self._boards: dict[tuple[Board, str], tuple[float, dict[str, int]]] = {}
        self._current_day = ""

    async def admit(self, user_id: int, chat_id: int, limits: Limits, now: float) -> Refusal | None:
        self._forget_expired(now)
        day = day_of(now)
        scopes = (
            (Scope.user(user_id), limits.user_per_minute, limits.user_daily_tokens),
            (Scope.chat(chat_id), limits.chat_per_minute, limits.chat_daily_tokens),
        )
        # Same order as the Redis store: per scope, the quota then the window; a message
        # is counted only once every check passed.
        windows: list[deque[float]] = []
        for scope, per_minute, daily in scopes:
            if daily and self._spent(scope, day, now) >= daily:
                reason = Reason.USER_TOKENS if scope.kind == "user" else Reason.CHAT_TOKENS
                return self._refuse(reason, scope, daily, seconds_to_midnight(now), now)
            if not per_minute:
                continue
            window = self._windows.setdefault(scope, deque())
            while window and window[0] <= now - limits.window:
                window.popleft()
            if len(window) >= per_minute:
                reason = Reason.USER_RATE if scope.kind == "user" else Reason.CHAT_RATE
                wait = window[0] + limits.window - now
                return self._refuse(reason, scope, per_minute, wait, now)
            windows.append(window)
        for window in windows:
            window.append(now)
        return None

    async def charge(self, charge: Charge, now: float) -> None:
        self._forget_expired(now)
        day, month = day_of(now), month_of(now)
        for scope in Scope.of_charge(charge):
            for period, ttl in ((day, DAY_TTL), (month, MONTH_TTL)):
                expires, old = self._usage.get((scope, period), (0.0, Totals()))
                if expires <= now:
                    # as in Redis: the TTL runs from the period's first answer
                    expires, old = now + ttl, Totals()
                new = replace(
                    old,
                    prompt=old.prompt + charge.prompt_tokens,
                    completion=old.completion + charge.completion_tokens,
                    requests=old.requests + 1,
                    cost_micros=old.cost_micros + charge.cost_micros,
                    reasoning=old.reasoning + charge.reasoning_tokens,
                )
                self._usage[(scope, period)] = (expires, new)
        boards: tuple[tuple[Board, str], ...] = (
            ("chats", str(charge.chat_id)),
            ("models", charge.model),
        )
        for board, member in boards:
            expires, scores = self._boards.get((board, month), (0.0, {}))
            if expires <= now:
                scores = {}
            if member not in scores:
                expires = now + MONTH_TTL  # as in Redis: a new member renews the board
            scores[member] = scores.get(member, 0) + charge.tokens
            self._boards[(board, month)] = (expires, scores)

    async def totals(self, wanted: Sequence[tuple[Scope, str]]) -> list[Totals]:
        return [self._usage.get(item, (0.0, Totals()))[1] for item in wanted]

    async def ranking(self, board: Board, month: str, count: int) -> list[tuple[str, int]]:
        _, scores = self._boards.get((board, month), (0.0, {}))
        return sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:count]

    def _spent(self, scope: Scope, day: str, now: float) -> int:
        expires, totals = self._usage.get((scope, day), (0.0, Totals()))
        return totals.tokens if expires > now else 0

    def _refuse(self, reason: Reason, who: Scope, limit: int, wait: float, now: float) -> Refusal:
        quiet_until = self._told.get((reason, who), 0.0)
        notify = quiet_until <= now
        if notify:
            self._told[(reason, who)] = now + max(1.0, min(wait, NOTICE_INTERVAL))
        return Refusal(reason, limit, wait, notify)

    def _forget_expired(self, now: float) -> None:
        """Once a day, drop what has expired, so memory stays bounded on a long run."""
        day = day_of(now)
        if day == self._current_day:
            return
        self._current_day = day
        self._usage = {k: v for k, v in self._usage.items() if v[0] > now}
        self._told = {k: v for k, v in self._told.items() if v > now}
        self._boards = {k: v for k, v in self._boards.items() if v[0] > now}
        self._windows = {k: w for k, w in self._windows.items() if w and w[-1] > now - 3600}
