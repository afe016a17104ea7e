"""Builders of the bot's parts from Settings (the composition root, `bot.app`, calls them)."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.client.telegram import PRODUCTION, TelegramAPIServer
from redis.asyncio import Redis

from bot.config import Settings
from bot.config.models import catalog_from_settings
from bot.guards.access import AccessPolicy
from bot.guards.admins import AdminChecker
from bot.guards.quotas import Limits, QuotaService, create_meter_store
from bot.history import HistoryStore, create_history_store
from bot.llm import GLMClient
from bot.models import ModelCatalog
from bot.personas import PersonaService
from bot.storage.keys import Keys
from bot.streaming import StreamDelivery
from bot.streaming.ratelimit import TelegramRateLimiter
from bot.streaming.telegram_session import UpdateCheckingSession

log = logging.getLogger(__name__)


def create_bot(settings: Settings) -> Bot:
    api = (
        TelegramAPIServer.from_base(settings.telegram_api_base)
        if settings.telegram_api_base
        else PRODUCTION
    )
    # reads a getUpdates batch update by update when aiogram cannot read it whole
    session = UpdateCheckingSession(
        api=api,
        limit=settings.telegram.connection_limit,
        timeout=settings.telegram.request_timeout,
    )
    return Bot(settings.telegram_bot_token.get_secret_value(), session=session)


def create_llm(settings: Settings) -> GLMClient:
    llm = settings.llm
    return GLMClient(
        api_key=settings.zhipu_api_key.get_secret_value(),
        base_url=settings.zhipu_base_url,
        max_concurrent=llm.max_concurrent,
        connect_timeout=llm.connect_timeout,
        read_timeout=llm.read_timeout,
        stall_timeout=llm.stall_timeout,
        retry_attempts=llm.retry_attempts,
        retry_max_seconds=llm.retry_max_seconds,
    )


def create_store(settings: Settings, bot_id: int) -> tuple[HistoryStore, Redis | None]:
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    store, redis = create_history_store(
        redis_url,
        prefix=settings.redis.key_prefix,
        bot_id=bot_id,
        max_messages=settings.history.max_messages,
        idle_ttl=settings.history.idle_ttl,
        max_connections=settings.redis.max_connections,
        pool_timeout=settings.redis.pool_timeout,
        mode=settings.redis.mode,
    )
    if redis is None:
        log.warning(
            "REDIS_URL is not set: conversations are kept in memory and will not survive a restart"
        )
    return store, redis


def create_delivery(settings: Settings, bot: Bot) -> StreamDelivery:
    stream = settings.stream
    limiter = TelegramRateLimiter(
        global_rate=stream.global_rate,
        per_chat_interval=stream.edit_interval,
        group_per_minute=stream.group_rate_per_minute,
    )
    return StreamDelivery(
        bot,
        limiter,
        private_method=settings.telegram.private_stream_method,
        edit_interval=stream.edit_interval,
        draft_interval=stream.draft_interval,
    )


def create_models(settings: Settings) -> ModelCatalog:
    """The model catalog of settings.toml; raises ConfigError for one that cannot work."""
    return catalog_from_settings(settings)


def create_admins(settings: Settings, bot: Bot, redis: Redis | None) -> AdminChecker:
    async def fetch_admins(chat_id: int) -> set[int]:
        members = await bot.get_chat_administrators(chat_id)
        return {member.user.id for member in members}

    return AdminChecker(
        fetch_admins,
        owners=settings.telegram.owners,
        redis=redis,
        keys=Keys(settings.redis.key_prefix, bot.id),
    )


def create_access(settings: Settings, redis: Redis | None, bot_id: int) -> AccessPolicy:
    access = settings.access
    return AccessPolicy(
        mode=access.mode,
        users=access.users,
        chats=access.chats,
        owners=settings.telegram.owners,
        refusal_interval=access.refusal_interval,
        redis=redis,
        keys=Keys(settings.redis.key_prefix, bot_id),
    )


def create_quotas(
    settings: Settings, redis: Redis | None, bot_id: int, models: ModelCatalog
) -> QuotaService:
    limits = settings.limits
    return QuotaService(
        create_meter_store(redis, Keys(settings.redis.key_prefix, bot_id)),
        limits=Limits(
            user_per_minute=limits.user_per_minute,
            chat_per_minute=limits.chat_per_minute,
            user_daily_tokens=limits.user_daily_tokens,
            chat_daily_tokens=limits.chat_daily_tokens,
        ),
        models=models,
        owners=settings.telegram.owners,
    )


def create_personas(settings: Settings, store: HistoryStore) -> PersonaService:
    return PersonaService(
        store,
        default=settings.persona.default,
        max_length=settings.persona.max_length,
        presets=settings.personas,
    )
