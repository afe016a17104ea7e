"""Factories for running in production: metrics, readiness, Redis leases, after-answer
hooks. `bot.app.create_app` calls them; kept apart so the composition stays readable."""

from __future__ import annotations

import logging
from typing import Protocol

from aiogram import Bot, Dispatcher
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.cluster.leases import RedisLeases
from bot.cluster.replicas import ReplicaRegistry, bot_wide_share
from bot.cluster.stop_signal import StopSignal
from bot.config import Settings
from bot.history import HistoryStore
from bot.observability.dispatcher_metrics import TelegramCallMetrics, UpdateMetrics
from bot.observability.health import Check, GLMHealth, Readiness
from bot.observability.metrics import MeteredModel, Metrics
from bot.stopping import Stoppable, Stopper
from bot.storage.keys import Keys
from bot.storage.redis_client import on_redis_error
from bot.streaming.ratelimit import TelegramRateLimiter
from bot.streaming.telegram_session import UpdateCheckingSession
from bot.turns.queue import TurnQueue
from bot.turns.types import AnsweredHook, AnswerResult, ChatModel, Turn

__all__ = [
    "answered_hooks",
    "create_leases",
    "create_metrics",
    "create_readiness",
    "create_replica_registry",
    "create_stopper",
    "metered",
    "observe_dispatcher",
    "run_with_dispatcher",
]

log = logging.getLogger(__name__)


def create_metrics(bot: Bot, redis: Redis | None) -> Metrics:
    """A registry for this app, fed by the bot's Bot API calls and the Redis client."""
    metrics = Metrics()
    bot.session.middleware(TelegramCallMetrics(metrics))
    if isinstance(bot.session, UpdateCheckingSession):
        bot.session.on_rejected = metrics.updates_rejected.inc
    if redis is not None:
        on_redis_error(redis, metrics.redis_error)
    return metrics


def observe_dispatcher(dispatcher: Dispatcher, metrics: Metrics, turns: TurnQueue) -> None:
    """Count updates by type and outcome, and read answers in flight at each scrape."""
    dispatcher.update.outer_middleware(UpdateMetrics(metrics))
    metrics.track_in_flight(lambda: turns.in_flight)


class Background(Protocol):
    """A part with a background task of its own (subscriber, heartbeat)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def run_with_dispatcher(dispatcher: Dispatcher, *parts: Background | None) -> None:
    """Start `parts` with the dispatcher, and stop them at its shutdown (after the running
    answers are drained, so that /stop still reaches those)."""
    for part in parts:
        if part is not None:
            dispatcher.startup.register(part.start)
            dispatcher.shutdown.register(part.stop)


def metered(model: ChatModel, metrics: Metrics | None) -> ChatModel:
    """`model`, counting its errors and tokens in `metrics` (unchanged without metrics)."""
    return model if metrics is None else MeteredModel(model, metrics)


def leases_enabled(settings: Settings, redis: Redis | None) -> bool:
    """Leases in webhook mode with Redis ("auto"), or as configured."""
    if redis is None:
        return False
    choice = settings.leases.enabled
    return choice == "on" or (choice == "auto" and settings.telegram.mode == "webhook")


def create_leases(
    settings: Settings, redis: Redis | None, bot_id: int, metrics: Metrics | None = None
) -> RedisLeases | None:
    """Conversation leases shared by replicas, or None for in-process locks only."""
    if redis is None or not leases_enabled(settings, redis):
        return None
    return RedisLeases(
        redis,
        Keys(settings.redis.key_prefix, bot_id),
        ttl=settings.leases.ttl,
        poll_interval=settings.leases.poll_interval,
        on_error=metrics.redis_error if metrics is not None else None,
    )


def create_stopper(
    settings: Settings,
    conversation: Stoppable,
    redis: Redis | None,
    bot_id: int,
    leases: RedisLeases | None,
    metrics: Metrics | None = None,
) -> tuple[Stopper, StopSignal | None]:
    """/stop for the handlers; with leases (replicas) it reaches answers running on other
    replicas through the returned signal, which runs with the dispatcher."""
    if redis is None or leases is None:
        return Stopper(conversation), None
    signal = StopSignal(
        redis,
        Keys(settings.redis.key_prefix, bot_id),
        held_elsewhere=leases.held_elsewhere,
        on_error=metrics.redis_error if metrics is not None else None,
    )
    stopper = Stopper(conversation, signal)
    signal.serve(stopper)
    return stopper, signal


def create_replica_registry(
    settings: Settings,
    redis: Redis | None,
    bot_id: int,
    leases: RedisLeases | None,
    limiter: TelegramRateLimiter,
    metrics: Metrics | None = None,
) -> ReplicaRegistry | None:
    """With leases (replicas), the live replicas split the bot-wide Telegram budget."""
    if redis is None or leases is None:
        return None
    budget = settings.stream.global_rate

    def share(replicas: int) -> None:
        limiter.set_global_rate(bot_wide_share(budget, replicas))

    return ReplicaRegistry(
        redis,
        Keys(settings.redis.key_prefix, bot_id),
        interval=settings.leases.presence_interval,
        on_count=share,
        on_error=metrics.redis_error if metrics is not None else None,
    )


def create_readiness(
    settings: Settings,
    bot: Bot,
    store: HistoryStore,
    redis: Redis | None,
    glm: GLMHealth | None = None,
) -> Readiness:
    """/readyz: Redis answers PING (when configured) and the Bot API answers getMe."""
    checks: dict[str, Check] = {}
    if redis is not None:

        async def redis_ready() -> bool:
            try:
                return bool(await redis.ping())
            except RedisError:
                return False

        checks["redis"] = redis_ready

    async def telegram_ready() -> bool:
        await bot.get_me()
        return True

    checks["telegram"] = telegram_ready
    return Readiness(checks, glm=glm, cache_seconds=settings.metrics.readiness_cache)


def answered_hooks(*hooks: AnsweredHook | None) -> AnsweredHook:
    """One after-answer hook calling each of `hooks` in turn; one failing does not stop
    the others (each failure is logged)."""
    chosen = [hook for hook in hooks if hook is not None]

    async def run_all(turn: Turn, result: AnswerResult) -> None:
        for hook in chosen:
            try:
                await hook(turn, result)
            except Exception:
                log.exception("an after-answer hook failed for chat %s", turn.key.chat_id)

    return run_all
