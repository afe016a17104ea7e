"""Admitting messages against the limits, charging answers, and reading usage back."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from bot.guards.quotas.base import (
    Charge,
    Clock,
    Limits,
    MeterStore,
    MeterUnavailable,
    Refusal,
    Scope,
    Totals,
    day_of,
    month_of,
    seconds_to_midnight,
)
from bot.models import ModelCatalog
from bot.prompt.tokens import message_tokens
from bot.turns.types import AnswerResult, Turn

__all__ = ["BotReport", "QuotaService", "UsageReport"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UsageReport:
    """One person's usage, and their chat's when asked in a group."""

    today: Totals
    month: Totals
    chat_today: Totals | None
    chat_month: Totals | None
    limits: Limits
    # until the daily quotas start again (00:00 UTC)
    resets_in: float
    # the person's month by model, most tokens first (models they used only)
    by_model: list[tuple[str, Totals]] = dataclasses.field(default_factory=list)
    # the models among them that draw pictures (counted per picture, not in tokens)
    picture_models: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class BotReport:
    """What the owners see: totals, models and the busiest chats this month."""

    today: Totals
    month: Totals
    models: list[tuple[str, Totals]]
    chats: list[tuple[int, Totals]]
    picture_models: frozenset[str] = frozenset()


class QuotaService:
    """Rate limits and daily token quotas (owners are exempt) and usage accounting
    (everyone is counted, owners too).

    `clock` is public so tests can move time.
    """

    def __init__(
        self,
        store: MeterStore,
        *,
        limits: Limits,
        models: ModelCatalog,
        owners: Iterable[int] = (),
        clock: Clock = time.time,
    ) -> None:
        self.store = store
        self.limits = limits
        self.clock = clock
        self._models = models
        self._owners = frozenset(owners)
        self._unpriced_warned: set[str] = set()

    async def admit(self, user_id: int, chat_id: int) -> Refusal | None:
        """None when the message may go to GLM (it is then counted in the rate windows)."""
        if user_id in self._owners or not self.limits.any:
            return None
        try:
            return await self.store.admit(user_id, chat_id, self.limits, self.clock())
        except MeterUnavailable:
            # Failing open: refusing everyone while Redis is down would punish users for
            # our outage; the conversation itself reports the storage problem.
            log.warning("limits unavailable; letting a message of chat %s through", chat_id)
            return None

    async def on_answered(self, turn: Turn, result: AnswerResult) -> None:
        """The conversation's hook after each answer: charge what GLM reported to the
        model that answered; pictures (/image) per picture. Reasoning is output: it is part
        of the completion tokens (and so of the cost), and counted on its own as well."""
        if result.pictures:
            await self.charge_pictures(
                turn.user_id, turn.key.chat_id, result.model, count=result.pictures
            )
            return
        if result.usage is not None:
            prompt, completion = result.usage.prompt_tokens, result.usage.completion_tokens
            reasoning = result.usage.reasoning_tokens
        elif result.first_token_at is not None or result.first_reasoning_at is not None:
            # GLM reports usage with its last chunk only: a stopped or cut answer was
            # still generated (and billed), so it is charged an estimate; otherwise
            # stopping just before the end (or while the model thinks) would dodge the
            # quota.
            prompt = result.estimated_prompt_tokens
            reasoning = message_tokens(result.reasoning) if result.reasoning else 0
            completion = (message_tokens(result.answer) if result.answer else 0) + reasoning
        else:
            return  # GLM produced nothing (an error before any text): nothing to charge
        await self.charge(
            turn.user_id,
            turn.key.chat_id,
            prompt,
            completion,
            model=result.model,
            reasoning_tokens=reasoning,
        )

    async def charge(
        self,
        user_id: int,
        chat_id: int,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        model: str | None = None,
        reasoning_tokens: int = 0,
    ) -> None:
        """Count an answer's tokens and cost against `model` (the default model if none
        is named); `reasoning_tokens` are the part of `completion_tokens` spent thinking."""
        model = model or self._models.default.name
        prompt_tokens, completion_tokens = max(0, prompt_tokens), max(0, completion_tokens)
        reasoning_tokens = min(max(0, reasoning_tokens), completion_tokens)
        charge = Charge(
            user_id=user_id,
            chat_id=chat_id,
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_micros=self.cost_micros(model, prompt_tokens, completion_tokens),
            reasoning_tokens=reasoning_tokens,
        )
        await self._record(charge)

    async def charge_pictures(self, user_id: int, chat_id: int, model: str, *, count: int) -> None:
        """Count pictures drawn: one request each, at the model's price per picture. They
        add no tokens: the daily token quota admits /image but is not spent by it."""
        spec = self._models.get(model)
        each = round((spec.prices.image if spec is not None else 0.0) * 1_000_000)
        for _ in range(count):
            await self._record(Charge(user_id, chat_id, model, 0, 0, each))

    async def _record(self, charge: Charge) -> None:
        try:
            await self.store.charge(charge, self.clock())
        except MeterUnavailable:
            log.warning(
                "usage of chat %s not recorded (%d tokens): storage unavailable",
                charge.chat_id,
                charge.tokens,
            )

    def cost_micros(self, model: str, prompt_tokens: int, completion_tokens: int) -> int:
        """Estimated cost in millionths of a CNY (0 for a model the catalog does not
        price, e.g. one removed since)."""
        spec = self._models.get(model)
        if spec is None:
            if model not in self._unpriced_warned:
                self._unpriced_warned.add(model)
                log.warning("model %s is not in the catalog: its cost is counted as 0", model)
            return 0
        return spec.prices.cost_micros(prompt_tokens, completion_tokens)

    async def user_report(self, user_id: int, chat_id: int | None = None) -> UsageReport:
        """Raises MeterUnavailable."""
        now = self.clock()
        day, month = day_of(now), month_of(now)
        wanted = [(Scope.user(user_id), day), (Scope.user(user_id), month)]
        if chat_id is not None:
            wanted += [(Scope.chat(chat_id), day), (Scope.chat(chat_id), month)]
        # the catalog is short: its models are read in the same round trip
        names = [model.name for model in self._models]
        wanted += [(Scope.user_model(user_id, name), month) for name in names]
        found = await self.store.totals(wanted)
        chat_today, chat_month = (found[2], found[3]) if chat_id is not None else (None, None)
        per_model = zip(names, found[len(found) - len(names) :], strict=True)
        by_model = sorted(
            ((name, totals) for name, totals in per_model if totals.requests),
            key=lambda item: -item[1].tokens,
        )
        return UsageReport(
            found[0],
            found[1],
            chat_today,
            chat_month,
            self.limits,
            seconds_to_midnight(now),
            by_model,
            self._picture_models(),
        )

    async def bot_report(self, top: int = 10) -> BotReport:
        """Raises MeterUnavailable."""
        now = self.clock()
        day, month = day_of(now), month_of(now)
        models = await self.store.ranking("models", month, top)
        chats = await self.store.ranking("chats", month, top)
        wanted = [(Scope.total(), day), (Scope.total(), month)]
        wanted += [(Scope.model(name), month) for name, _ in models]
        wanted += [(Scope.chat(int(chat)), month) for chat, _ in chats]
        found = await self.store.totals(wanted)
        model_totals = found[2 : 2 + len(models)]
        chat_totals = found[2 + len(models) :]
        return BotReport(
            today=found[0],
            month=found[1],
            models=[(name, t) for (name, _), t in zip(models, model_totals, strict=True)],
            chats=[(int(chat), t) for (chat, _), t in zip(chats, chat_totals, strict=True)],
            picture_models=self._picture_models(),
        )

    def _picture_models(self) -> frozenset[str]:
        return frozenset(model.name for model in self._models if model.kind == "image")
