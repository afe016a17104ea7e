"""The builder of the turn queue and what answers a turn."""

from __future__ import annotations

from bot.config import Settings
from bot.factory.operations import metered
from bot.factory.reliability import create_breaker
from bot.history import HistoryStore
from bot.llm import GLMClient
from bot.models import ModelCatalog
from bot.observability.metrics import Metrics
from bot.prompt.tokens import TokenCalibration
from bot.roleplay import characters
from bot.turns.answer import Answerer
from bot.turns.journal import TurnJournal
from bot.turns.pictures import Pictures
from bot.turns.plan import Planner
from bot.turns.queue import ConversationLeases, TurnQueue
from bot.turns.types import AnsweredHook, ImageSource, OwnerAlert


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
    images: ImageSource | None = None,
) -> TurnQueue:
    calibration = TokenCalibration()
    planner = Planner(
        models=models,
        calibration=calibration,
        default_persona=settings.persona.default,
        images=images,
        history_images=settings.media.history_images,
        characters=characters(settings.personas),
    )
    answerer = Answerer(
        store=store,
        model=create_breaker(settings, metered(llm, metrics)),
        planner=planner,
        models=models,
        calibration=calibration,
        on_owner_alert=on_owner_alert,
        on_answered=on_answered,
        # /image turns: the client itself, not the breaker (pictures are rare and take
        # seconds; a failing image model says nothing about chat answers)
        pictures=Pictures(llm, models),
    )
    return TurnQueue(
        answerer,
        journal=journal,
        leases=leases,
        on_failed=metrics.answer_failed if metrics is not None else None,
    )
