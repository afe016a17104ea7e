"""Factories for the parts that keep the bot trustworthy under failure.

``bot.app`` calls these: the circuit breaker around the GLM client, the owner alerts
(sent through the aiogram Bot), update deduplication, and the journal of answers in
progress that reports answers lost in a crash. The parts themselves know nothing of
aiogram; the Telegram calls are the small functions built here.
"""

from __future__ import annotations

from aiogram import Bot
from redis.asyncio import Redis

from bot.config import Settings
from bot.guards.alerts import OwnerAlerts
from bot.guards.breaker import CircuitBreakerModel
from bot.guards.dedup import UpdateDedup
from bot.llm import ErrorKind
from bot.storage.keys import Keys
from bot.texts import text
from bot.turns.journal import PendingTurn, TurnJournal
from bot.turns.types import ChatModel, OwnerAlert

__all__ = ["create_breaker", "create_dedup", "create_journal", "create_owner_alert"]

# Owners' language is unknown, and either may be theirs.
_ALERT_LANGUAGES = ("en", "zh")
_ALERT_TEXTS = {
    ErrorKind.NO_BALANCE: "owner_alert_no_balance",
    ErrorKind.AUTH: "owner_alert_auth",
}


def create_breaker(settings: Settings, model: ChatModel) -> CircuitBreakerModel:
    llm = settings.llm
    return CircuitBreakerModel(
        model,
        failures=llm.breaker_failures,
        window=llm.breaker_window,
        cooldown=llm.breaker_cooldown,
    )


def create_owner_alert(settings: Settings, bot: Bot, redis: Redis | None) -> OwnerAlert:
    """The ``on_owner_alert`` hook of ConversationService."""

    async def send(owner: int, message: str) -> None:
        await bot.send_message(owner, message)

    alerts = OwnerAlerts(
        send,
        settings.telegram.owners,
        redis=redis,
        keys=Keys(settings.redis.key_prefix, bot.id),
        interval=settings.reliability.owner_alert_interval,
    )

    async def on_owner_alert(kind: ErrorKind, description: str) -> bool:
        key = _ALERT_TEXTS.get(kind)
        if key is None:
            return False
        message = "\n\n".join(
            text(key, language, detail=description) for language in _ALERT_LANGUAGES
        )
        return await alerts.alert(kind.value, message)

    return on_owner_alert


def create_dedup(settings: Settings, redis: Redis | None, bot_id: int) -> UpdateDedup:
    return UpdateDedup(
        redis,
        Keys(settings.redis.key_prefix, bot_id),
        ttl=settings.reliability.update_dedup_ttl,
    )


def create_journal(settings: Settings, bot: Bot, redis: Redis | None) -> TurnJournal | None:
    """The journal of answers in progress; None without Redis (a restart forgets anyway)."""
    if redis is None:
        return None

    async def notify(turn: PendingTurn) -> None:
        notice = text("answer_lost_on_restart", turn.language, preview=turn.preview)
        await bot.send_message(turn.chat_id, notice, message_thread_id=turn.thread_id)

    return TurnJournal(
        redis,
        Keys(settings.redis.key_prefix, bot.id),
        notify,
        heartbeat=settings.reliability.heartbeat,
        grace=settings.reliability.pending_grace,
    )
