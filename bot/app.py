"""Factories that build the bot's parts from Settings; `bot.__main__` only calls these."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TypedDict

from aiogram import Bot, Dispatcher
from aiogram.client.telegram import PRODUCTION, TelegramAPIServer
from redis.asyncio import Redis

from bot.cluster.leases import RedisLeases
from bot.config import Settings
from bot.config.models import catalog_from_settings
from bot.factory.media import create_albums, create_files, create_images
from bot.factory.operations import (
    answered_hooks,
    create_leases,
    create_metrics,
    create_readiness,
    create_replica_registry,
    create_stopper,
    metered,
    observe_dispatcher,
    run_with_dispatcher,
)
from bot.factory.reliability import create_breaker, create_dedup, create_journal, create_owner_alert
from bot.guards.access import AccessPolicy
from bot.guards.admins import AdminChecker
from bot.guards.dedup import UpdateDedup
from bot.guards.quotas import Limits, QuotaService, create_meter_store
from bot.history import HistoryStore, create_history_store
from bot.llm import GLMClient
from bot.media.albums import AlbumCollector
from bot.media.files import TelegramFiles
from bot.models import ModelCatalog
from bot.observability.answer_log import log_answer
from bot.observability.health import GLMHealth, Readiness
from bot.observability.http import ObservabilityServer
from bot.observability.metrics import Metrics
from bot.personas import PersonaService
from bot.preferences import ChatPreferences
from bot.stopping import Stopper
from bot.storage.keys import Keys
from bot.streaming import StreamDelivery
from bot.streaming.ratelimit import TelegramRateLimiter
from bot.streaming.telegram_session import UpdateCheckingSession
from bot.turns.answer import Answerer
from bot.turns.journal import TurnJournal
from bot.turns.queue import ConversationLeases, TurnQueue
from bot.turns.types import AnsweredHook, ChatModel, ImageSource, OwnerAlert
from handlers import get_routers
from handlers.dedup import install_dedup
from handlers.menu import register_commands

log = logging.getLogger(__name__)

# Longest wait for running answers when the bot stops.
SHUTDOWN_DRAIN_SECONDS = 30.0


class Services(TypedDict):
    """What handlers receive by name through the dispatcher's workflow data."""

    settings: Settings
    turns: TurnQueue
    delivery: StreamDelivery
    store: HistoryStore
    preferences: ChatPreferences
    models: ModelCatalog
    personas: PersonaService
    admins: AdminChecker
    access: AccessPolicy
    quotas: QuotaService
    stopper: Stopper
    files: TelegramFiles
    albums: AlbumCollector


@dataclass
class App:
    settings: Settings
    bot: Bot
    dispatcher: Dispatcher
    store: HistoryStore
    redis: Redis | None
    llm: GLMClient
    turns: TurnQueue
    delivery: StreamDelivery
    metrics: Metrics = field(default_factory=Metrics)
    readiness: Readiness = field(default_factory=lambda: Readiness({}))
    leases: RedisLeases | None = None

    async def aclose(self) -> None:
        """Release every connection and thread; the order matters little, all are independent."""
        if self.leases is not None:
            await self.leases.aclose()
        await self.llm.aclose()
        await self.store.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        await self.bot.session.close()


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


def create_turns(
    settings: Settings,
    store: HistoryStore,
    llm: GLMClient,
    models: ModelCatalog,
    *,
    on_owner_alert: OwnerAlert | None = None,
    journal: TurnJournal | None = None,
    on_answered: AnsweredHook | None = None,
    leases: ConversationLeases | None = None,
    metrics: Metrics | None = None,
    glm_health: GLMHealth | None = None,
    images: ImageSource | None = None,
) -> TurnQueue:
    # innermost, the readiness watch: the breaker's own refusals are not GLM's answers
    model: ChatModel = llm if glm_health is None else glm_health.watch(llm)
    answerer = Answerer(
        store=store,
        model=create_breaker(settings, metered(model, metrics)),
        models=models,
        default_persona=settings.persona.default,
        on_owner_alert=on_owner_alert,
        on_answered=on_answered,
        images=images,
        history_images=settings.media.history_images,
    )
    return TurnQueue(
        answerer,
        journal=journal,
        leases=leases,
        on_failed=metrics.answer_failed if metrics is not None else None,
    )


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


def create_dispatcher(
    services: Services,
    *,
    dedup: UpdateDedup | None = None,
    journal: TurnJournal | None = None,
) -> Dispatcher:
    # No FSM: the bot has no multi-step dialogues, and aiogram's in-memory FSM storage
    # would keep a record for every user and chat it ever saw.
    dispatcher = Dispatcher(disable_fsm=True, **services)
    dispatcher.include_routers(*get_routers())
    if dedup is not None:
        install_dedup(dispatcher, dedup)

    async def drain_answers() -> None:
        running = services["turns"].in_flight
        if running:
            log.info(
                "shutting down: waiting up to %.0fs for %d answers", SHUTDOWN_DRAIN_SECONDS, running
            )
        left = await services["turns"].drain(SHUTDOWN_DRAIN_SECONDS)
        if left:
            log.warning("shutting down: %d answers did not finish in time", left)
        elif running:
            log.info("shutting down: all running answers finished")

    dispatcher.startup.register(register_commands)
    # albums being collected complete at once, so their answers are among those drained
    dispatcher.shutdown.register(services["albums"].close)
    dispatcher.shutdown.register(drain_answers)
    if journal is not None:
        # after the drain, so that answers finished by then are not reported as lost
        dispatcher.startup.register(journal.start)
        dispatcher.shutdown.register(journal.stop)
    return dispatcher


def create_app(settings: Settings) -> App:
    bot = create_bot(settings)
    store, redis = create_store(settings, bot.id)
    metrics = create_metrics(bot, redis)
    leases = create_leases(settings, redis, bot.id, metrics)
    llm = create_llm(settings)
    models = create_models(settings)
    quotas = create_quotas(settings, redis, bot.id, models)
    journal = create_journal(settings, bot, redis)
    glm_health = GLMHealth()
    files = create_files(settings, bot)
    turns = create_turns(
        settings,
        store,
        llm,
        models,
        on_owner_alert=create_owner_alert(settings, bot, redis),
        journal=journal,
        on_answered=answered_hooks(quotas.on_answered, metrics.on_answered, log_answer),
        leases=leases,
        metrics=metrics,
        glm_health=glm_health,
        images=create_images(settings, files),
    )
    delivery = create_delivery(settings, bot)
    stopper, stop_signal = create_stopper(settings, turns, redis, bot.id, leases, metrics)
    replicas = create_replica_registry(settings, redis, bot.id, leases, delivery.limiter, metrics)
    dispatcher = create_dispatcher(
        Services(
            settings=settings,
            turns=turns,
            delivery=delivery,
            store=store,
            preferences=ChatPreferences(store),
            models=models,
            personas=create_personas(settings, store),
            admins=create_admins(settings, bot, redis),
            access=create_access(settings, redis, bot.id),
            quotas=quotas,
            stopper=stopper,
            files=files,
            albums=create_albums(settings),
        ),
        dedup=create_dedup(settings, redis, bot.id),
        journal=journal,
    )
    observe_dispatcher(dispatcher, metrics, turns)
    run_with_dispatcher(dispatcher, stop_signal, replicas)
    return App(
        settings,
        bot,
        dispatcher,
        store,
        redis,
        llm,
        turns,
        delivery,
        metrics=metrics,
        readiness=create_readiness(settings, bot, store, redis, glm_health),
        leases=leases,
    )


async def run_polling(app: App) -> None:
    observability = ObservabilityServer(app.metrics, app.readiness)
    loop_lag = app.metrics.loop_lag_monitor()
    try:
        if app.settings.metrics.port:
            await observability.start(app.settings.metrics.host, app.settings.metrics.port)
        await loop_lag.start()
        await app.dispatcher.start_polling(
            app.bot,
            allowed_updates=app.dispatcher.resolve_used_update_types(),
            close_bot_session=False,
        )
    finally:
        await loop_lag.stop()
        await observability.stop()
        await app.aclose()
