"""Answering one turn, as a plain sequence of steps:

    read     a voice message or document first (`bot.turns.inputs`); an album's photos
    load     the persona, the chat's preferences and the newest history (one read)
    plan     the model, the images, the prompt within the model's budget and the options
             (`bot.turns.plan`)
    stream   GLM's answer into the writer (once more, shorter, if the prompt was too long)
    outcome  how it ended, and from the table in `bot.turns.outcomes` what that means
    store    question and answer, when the ending keeps them
    finish   the final message, with its notes

/image turns draw instead (`bot.turns.pictures`). The queue (`bot.turns.queue`) runs one
answer at a time per conversation and can stop it through its `AnswerRun`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

from bot.history import ConversationContext, HistoryStore, HistoryUnavailable
from bot.llm import ErrorKind, GLMError
from bot.messages import Message
from bot.models import ModelCatalog
from bot.preferences import Preferences
from bot.prompt.build import Prompt
from bot.prompt.tokens import TokenCalibration
from bot.texts import text
from bot.turns.inputs import cut_note, fit_attachment, prepare
from bot.turns.outcomes import ENDINGS, ERROR_NOTES, STOPPED_EMPTY, decide
from bot.turns.pictures import Pictures
from bot.turns.plan import Planner, TurnPlan
from bot.turns.sources import cite, with_sources
from bot.turns.stream import AnswerRun, generate
from bot.turns.types import (
    AnsweredHook,
    AnswerResult,
    AnswerWriter,
    ChatModel,
    Outcome,
    OwnerAlert,
    PreparationRefused,
    Turn,
)

__all__ = ["AnswerRun", "Answerer"]

# Reasoning folded above an answer is cut here: the whole of it can run to pages.
SHOWN_REASONING_CHARS = 1200

log = logging.getLogger(__name__)


class Answerer:
    def __init__(
        self,
        *,
        store: HistoryStore,
        model: ChatModel,
        planner: Planner,
        models: ModelCatalog,
        calibration: TokenCalibration,
        on_owner_alert: OwnerAlert | None = None,
        on_answered: AnsweredHook | None = None,
        pictures: Pictures | None = None,
    ) -> None:
        self._store = store
        self._model = model
        self._planner = planner
        self._models = models
        self._calibration = calibration
        self._on_owner_alert = on_owner_alert
        self._on_answered = on_answered
        self._pictures = pictures

    async def answer(self, turn: Turn, writer: AnswerWriter, run: AnswerRun) -> AnswerResult:
        if turn.picture and self._pictures is not None:
            result = await self._pictures.draw(turn, writer, run, alert=self._alert)
            await self._answered(turn, result)
            return result
        if turn.arriving is not None:  # an album: the rest of its photos
            turn = replace(turn, parts=await turn.arriving.collected(), arriving=None)
        try:
            turn, writer = await prepare(turn, writer)
        except (PreparationRefused, GLMError) as refused:
            return await self._refuse(turn, writer, refused)
        question = fit_attachment(turn, self._models.largest_prompt_budget).question()
        try:
            context = await self._load(turn, question, shrink=1)
        except HistoryUnavailable:
            log.warning("history unavailable for chat %s", turn.key.chat_id)
            return await self._unanswered(turn, writer, "storage_unavailable")
        plan = await self._planner.plan(turn, context)
        if isinstance(plan, str):  # the question's own image cannot be seen
            return await self._unanswered(turn, writer, plan)
        result = AnswerResult(Outcome.FAILED, model=plan.model.name)
        error = await self._stream(plan, writer, run, result)
        run.settled = True
        self._settle(result, run, error, plan.prompt)
        await self._finish(plan, writer, run, result, error)
        return result

    async def skip(self, turn: Turn, writer: AnswerWriter) -> AnswerResult:
        """A turn /stop dropped before its answer began: its user is told, and the
        after-answer hook counts it."""
        result = AnswerResult(Outcome.SKIPPED, finished_at=time.monotonic())
        note = ENDINGS[Outcome.SKIPPED].note
        await writer.finish("", footer=text(note, turn.language) if note else None)
        await self._answered(turn, result)
        return result

    async def _refuse(
        self, turn: Turn, writer: AnswerWriter, refused: PreparationRefused | GLMError
    ) -> AnswerResult:
        """A voice message or document that cannot be answered: its user is told why."""
        if isinstance(refused, GLMError):
            result = AnswerResult(Outcome.FAILED, error=refused.kind)
            note = text(await self._error_note(turn, refused, None), turn.language)
        else:
            result = AnswerResult(Outcome.FAILED)
            note = text(refused.key, turn.language, **refused.values)
        result.finished_at = time.monotonic()
        await writer.finish("", footer=note)
        await self._answered(turn, result)
        return result

    async def _unanswered(self, turn: Turn, writer: AnswerWriter, note: str) -> AnswerResult:
        await writer.finish("", footer=text(note, turn.language))
        return AnswerResult(Outcome.FAILED)

    # -- the steps -----------------------------------------------------------------------

    async def _load(self, turn: Turn, question: Message, *, shrink: int) -> ConversationContext:
        # The chat's model is known only with the context, so the read covers the largest
        # budget any chat model has; the prompt then keeps what the chosen model takes.
        budget = self._calibration.unscale(self._models.largest_prompt_budget // shrink)
        # The store subtracts a stored persona itself; the question and a default persona
        # are ours to leave room for, so no history is read only to be dropped.
        reserved = question.tokens + self._planner.default_persona_tokens
        return await self._store.load_context(turn.key, max(0, budget - reserved))

    async def _stream(
        self, plan: TurnPlan, writer: AnswerWriter, run: AnswerRun, result: AnswerResult
    ) -> GLMError | None:
        """Stream the answer; the error it ended with, if any. A prompt GLM finds too
        long is tried once more at half the budget, if no text was shown yet."""
        prompt = plan.prompt
        for attempt in (1, 2):
            result.request_sent_at = time.monotonic()
            result.estimated_prompt_tokens = self._calibration.scale(prompt.estimated_tokens)
            try:
                await generate(self._model, prompt.messages, plan.options, writer, run, result)
                return None
            except GLMError as exc:
                if exc.kind is not ErrorKind.PROMPT_TOO_LONG or attempt == 2 or run.text:
                    return exc
                try:
                    context = await self._load(plan.turn, plan.question, shrink=2)
                except HistoryUnavailable:
                    return exc
                prompt = self._planner.prompt(
                    context, plan.question, plan.model, plan.images, shrink=2
                )
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if not run.stopped or (current is not None and current.cancelling()):
                    raise  # shutdown, not /stop
                return None
        return None  # not reached: the second attempt returns

    def _settle(
        self, result: AnswerResult, run: AnswerRun, error: GLMError | None, prompt: Prompt
    ) -> None:
        """How the answer ended, into `result`."""
        end = run.end
        result.finish_reason = end.finish_reason if end else None
        result.outcome = decide(
            stopped=run.stopped,
            failed=error is not None,
            text=run.text,
            finish_reason=result.finish_reason,
        )
        result.answer = run.text
        result.reasoning = run.reasoning
        result.finished_at = time.monotonic()
        result.error = error.kind if error is not None else None
        if result.outcome is Outcome.COMPLETED and end is not None:
            result.usage = end.usage
            if end.usage is not None:
                self._calibration.observe(prompt.estimated_tokens, end.usage.prompt_tokens)

    async def _finish(
        self,
        plan: TurnPlan,
        writer: AnswerWriter,
        run: AnswerRun,
        result: AnswerResult,
        error: GLMError | None,
    ) -> None:
        """Store what the ending keeps, send the final message, report the answer."""
        turn = plan.turn
        notes = await self._notes(turn, plan.prompt, result, error)
        # A completed answer with no text (cut at `length` while reasoning) is not kept:
        # the user is asked to ask again, and a placeholder would read as the model's words.
        if ENDINGS[result.outcome].stored and (run.text or result.outcome is Outcome.STOPPED):
            # sources as plain numbers: their links are for the user, not the model
            reply = cite(run.text, ()) or STOPPED_EMPTY
            result.stored = await self._store_turn(turn, plan.question, reply)
            if not result.stored:
                notes.append(text("history_not_saved", turn.language))
        await writer.finish(
            with_sources(run.text, run.sources, text("sources", turn.language)),
            footer="\n".join(notes) or None,
            reasoning=_shown_reasoning(run.reasoning, plan.preferences),
        )
        result.first_visible_at = writer.first_visible_at
        result.api_calls = writer.api_calls
        await self._answered(turn, result)

    async def _notes(
        self, turn: Turn, prompt: Prompt, result: AnswerResult, error: GLMError | None
    ) -> list[str]:
        """The lines shown under the answer."""
        keys: list[str] = []
        cut = cut_note(turn)
        if prompt.user_truncated:
            keys.append("question_truncated")
        ending = ENDINGS[result.outcome].note
        if ending is not None:
            keys.append(ending)
        if error is not None and result.outcome is Outcome.FAILED:
            keys.append(await self._error_note(turn, error, prompt))
        if result.outcome is Outcome.COMPLETED and result.finish_reason == "length":
            keys.append("cut_at_length" if result.answer else "length_no_content")
        elif result.outcome is Outcome.COMPLETED and not result.answer:
            keys.append("empty_answer")
        notes = [text(key, turn.language) for key in keys]
        return notes if cut is None else [cut, *notes]

    async def _error_note(self, turn: Turn, error: GLMError, prompt: Prompt | None) -> str:
        if error.kind is ErrorKind.BAD_REQUEST and prompt is not None:
            # A malformed request is our bug: log its shape, never the content.
            shape = [(m["role"], len(m["content"])) for m in prompt.messages]
            log.error("GLM rejected a request (%s): roles and lengths %s", error, shape)
        else:
            log.warning("GLM failed for chat %s: %s", turn.key.chat_id, error)
        note = ERROR_NOTES[error.kind]
        if error.kind in (ErrorKind.NO_BALANCE, ErrorKind.AUTH) and not await self._alert(error):
            note = "service_unavailable_quiet"  # nobody was told: do not say so
        return note

    async def _alert(self, error: GLMError) -> bool:
        if self._on_owner_alert is None:
            return False
        try:
            return await self._on_owner_alert(error.kind, str(error))
        except Exception:
            log.exception("could not alert the owners about %s", error.kind.value)
            return False

    async def _store_turn(self, turn: Turn, question: Message, reply: str) -> bool:
        try:
            await self._store.append(turn.key, [question, Message.of_text("assistant", reply)])
        except HistoryUnavailable:
            log.warning("could not store a turn of chat %s", turn.key.chat_id)
            return False
        return True

    async def _answered(self, turn: Turn, result: AnswerResult) -> None:
        if self._on_answered is None:
            return
        try:
            await self._on_answered(turn, result)
        except Exception:
            # accounting must never cost the user an answer already delivered
            log.exception("the after-answer hook failed for chat %s", turn.key.chat_id)


def _shown_reasoning(reasoning: str, preferences: Preferences) -> str | None:
    """What of the reasoning is folded above the answer (None: nothing)."""
    reasoning = reasoning.strip()
    if not reasoning or preferences.show_reasoning == "hidden":
        return None
    if len(reasoning) <= SHOWN_REASONING_CHARS:
        return reasoning
    return reasoning[:SHOWN_REASONING_CHARS].rstrip() + " …"
