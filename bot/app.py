"""The composition root: `create_app` builds every part from Settings (with the builders
of `bot.factory`) and wires them into one dispatcher; `bot.__main__` runs the result."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TypedDict

from aiogram import Bot, Dispatcher
from redis.asyncio import Redis

from bot.cluster.leases import RedisLeases
from bot.config import Settings
from bot.factory.media import create_albums, create_files, create_images, create_media
from bot.factory.operations import (
    answered_hooks,
    create_leases,
    create_metrics,
    create_readiness,
    create_replica_registry,
    create_stopper,
    observe_dispatcher,
    run_with_dispatcher,
)
from bot.factory.parts import (
    create_access,
    create_admins,
    create_bot,
    create_delivery,
    create_llm,
    create_models,
    create_personas,
    create_quotas,
    create_store,
)
from bot.factory.reliability import create_dedup, create_journal, create_owner_alert
from bot.factory.turns import create_turns
from bot.guards.access import AccessPolicy
from bot.guards.admins import AdminChecker
from bot.guards.dedup import UpdateDedup
from bot.guards.quotas import QuotaService
from bot.history import HistoryStore
from bot.llm import GLMClient
from bot.media.albums import AlbumCollector
from bot.media.files import TelegramFiles
from bot.media.inputs import MediaInputs
from bot.models import ModelCatalog
from bot.observability.answer_log import log_answer
from bot.observability.health import GLMHealth, Readiness
from bot.observability.http import ObservabilityServer
from bot.observability.metrics import Metrics
from bot.personas import PersonaService
from bot.preferences import ChatPreferences
from bot.stopping import Stopper
from bot.streaming import StreamDelivery
from bot.turns.journal import TurnJournal
from bot.turns.queue import TurnQueue
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
    media: MediaInputs
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
        on_answered=answered_hooks(
            quotas.on_answered, metrics.on_answered, log_answer, glm_health.on_answered
        ),
        leases=leases,
        metrics=metrics,
        images=create_images(settings, files),
    )
    delivery = create_delivery(settings, bot)
    stopper, stop_signal = create_stopper(settings, turns, redis, bot.id, leases, metrics)
    replicas = create_replica_registry(settings, redis, bot.id, leases, delivery.limiter, metrics)
    services = Services(
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
        media=create_media(settings, files, llm, models),
        albums=create_albums(settings),
    )
    dispatcher = create_dispatcher(
        services, dedup=create_dedup(settings, redis, bot.id), journal=journal
    )
    observe_dispatcher(dispatcher, metrics, turns)
    run_with_dispatcher(dispatcher, stop_signal, replicas)
    readiness = create_readiness(settings, bot, store, redis, glm_health)
    return App(
        settings, bot, dispatcher, store, redis, llm, turns, delivery, metrics, readiness, leases
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
