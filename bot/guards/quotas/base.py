"""Rate limits, daily token quotas and usage accounting: the shared vocabulary.

Times are unix seconds from an injectable clock; days and months are UTC. Usage is
counted per scope (a user, a chat, a model, the whole bot) and per period (a day, a
month); costs are kept as integer millionths of the price unit so sums stay exact.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

__all__ = [
    "DAY_TTL",
    "MONTH_TTL",
    "NOTICE_INTERVAL",
    "Board",
    "Charge",
    "Clock",
    "Limits",
    "MeterStore",
    "MeterUnavailable",
    "Reason",
    "Refusal",
    "Scope",
    "Totals",
    "day_of",
    "month_of",
    "seconds_to_midnight",
]

Clock = Callable[[], float]

# Day counters feed the daily quotas and a week of look-back; month counters a year of it.
DAY_TTL = 7 * 86_400
MONTH_TTL = 400 * 86_400
# However long a limit lasts, a person who keeps writing is reminded at most this often.
NOTICE_INTERVAL = 60.0

Board = Literal["chats", "models"]


class MeterUnavailable(Exception):
    """The counters' storage cannot be reached right now."""


class Reason(enum.Enum):
    USER_RATE = "user_rate"
    CHAT_RATE = "chat_rate"
    USER_TOKENS = "user_tokens"
    CHAT_TOKENS = "chat_tokens"


@dataclass(frozen=True, slots=True)
class Limits:
    """0 turns a limit off."""

    user_per_minute: int = 0
    chat_per_minute: int = 0
    user_daily_tokens: int = 0
    chat_daily_tokens: int = 0
    # The "per minute" window, in seconds (a sliding window, not clock minutes).
    window: float = 60.0

    @property
    def any(self) -> bool:
        return any(
            (
                self.user_per_minute,
                self.chat_per_minute,
                self.user_daily_tokens,
                self.chat_daily_tokens,
            )
        )


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a message may not reach GLM now, and for how long."""

    reason: Reason
    limit: int
    # seconds until the limit lets the next message through
    retry_after: float
    # the first refusal of this kind lately: say so; later ones are ignored quietly
    notify: bool

    @property
    def is_quota(self) -> bool:
        return self.reason in (Reason.USER_TOKENS, Reason.CHAT_TOKENS)


@dataclass(frozen=True, slots=True)
class Totals:
    prompt: int = 0
    completion: int = 0
    requests: int = 0
    cost_micros: int = 0
    # the part of `completion` a thinking model spent reasoning (billed as output)
    reasoning: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt + self.completion

    @property
    def cost(self) -> float:
        return self.cost_micros / 1_000_000


@dataclass(frozen=True, slots=True)
class Charge:
    """One answer's tokens, to be added to every scope it belongs to."""

    user_id: int
    chat_id: int
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_micros: int
    # part of completion_tokens (usage.completion_tokens_details.reasoning_tokens)
    reasoning_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose usage: one user, one chat, one model, one user's use of one model, or the
    whole bot."""

    kind: Literal["user", "chat", "model", "user_model", "total"]
    ident: str = ""

    @classmethod
    def user(cls, user_id: int) -> Scope:
        return cls("user", str(user_id))

    @classmethod
    def chat(cls, chat_id: int) -> Scope:
        return cls("chat", str(chat_id))

    @classmethod
    def model(cls, name: str) -> Scope:
        return cls("model", name)

    @classmethod
    def user_model(cls, user_id: int, model: str) -> Scope:
        return cls("user_model", f"{user_id}:{model}")

    @classmethod
    def total(cls) -> Scope:
        return cls("total")

    @classmethod
    def of_charge(cls, charge: Charge) -> list[Scope]:
        return [
            cls.user(charge.user_id),
            cls.chat(charge.chat_id),
            cls.model(charge.model),
            cls.user_model(charge.user_id, charge.model),
            cls.total(),
        ]


def _utc(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


def day_of(now: float) -> str:
    """The UTC day as a period name, e.g. ``d20240131``."""
    return _utc(now).strftime("d%Y%m%d")


def month_of(now: float) -> str:
    """The UTC month as a period name, e.g. ``m202401``."""
    return _utc(now).strftime("m%Y%m")


def seconds_to_midnight(now: float) -> float:
    """Until the next 00:00 UTC, when the daily quotas start again."""
    today = _utc(now).replace(hour=0, minute=0, second=0, microsecond=0)
    return (today + timedelta(days=1)).timestamp() - now


class MeterStore(Protocol):
    """Where limits and usage are counted. Every method may raise `MeterUnavailable`."""

    async def admit(self, user_id: int, chat_id: int, limits: Limits, now: float) -> Refusal | None:
        """Check the quotas and rate limits of a message; if it passes, count it in the
        rate windows. Atomic: concurrent callers (replicas) never exceed a rate limit."""
        ...

    async def charge(self, charge: Charge, now: float) -> None:
        """Add an answer's tokens and cost to its user, chat, model and the totals, for
        the day and the month, atomically."""
        ...

    async def totals(self, wanted: Sequence[tuple[Scope, str]]) -> list[Totals]:
        """Usage of each (scope, period), in order; zero where nothing was counted."""
        ...

    async def ranking(self, board: Board, month: str, count: int) -> list[tuple[str, int]]:
        """The chats (or models) that used the most tokens in the month, most first."""
        ...
