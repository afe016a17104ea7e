"""Answering one turn, as a plain sequence of steps:

    load     the persona, the chat's preferences and the newest history (one read)
    see      the images of the question and the newest of the history (`ImageSource`)
    model    the chat's model (a vision model when there are images), and with it the
             prompt budget and answer limit
    prompt   the messages for GLM within that budget (`bot.prompt.build`)
    stream   GLM's answer into the writer (once more, shorter, if the prompt was too long)
    outcome  how it ended, and from the table in `bot.turns.outcomes` what that means
    store    question and answer, when the ending keeps them
    finish   the final message, with its notes

The queue (`bot.turns.queue`) runs one answer at a time per conversation and can stop
it through its `AnswerRun`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import replace

from bot.history import ConversationContext, HistoryStore, HistoryUnavailable
from bot.llm import ErrorKind, GLMError, GLMOptions
from bot.messages import ImagePart, Message
from bot.models import ModelCatalog, ModelSpec
from bot.preferences import Preferences
from bot.prompt.build import Prompt, attachable_images, build_prompt
from bot.prompt.tokens import TokenCalibration, message_tokens
from bot.texts import text
from bot.turns.outcomes import ENDINGS, ERROR_NOTES, STOPPED_EMPTY, decide
from bot.turns.sources import cite, with_sources
from bot.turns.stream import AnswerRun, generate, options_for
from bot.turns.types import (
    AnsweredHook,
    AnswerResult,
    AnswerWriter,
    ChatModel,
    FetchedImages,
    ImageProblem,
    ImageSource,
    Outcome,
    OwnerAlert,
    Turn,
)

__all__ = ["AnswerRun", "Answerer"]

# Reasoning folded above an answer is cut here: the whole of it can run to pages.
SHOWN_REASONING_CHARS = 1200
# What the asker is told when an image of the question cannot be seen.
_IMAGE_NOTES: Mapping[ImageProblem, str] = {
    "too_large": "file_too_large",
    "unavailable": "image_unavailable",
    "unreadable": "image_unreadable",
}

log = logging.getLogger(__name__)


class Answerer:
    def __init__(
        self,
        *,
        store: HistoryStore,
        model: ChatModel,
        models: ModelCatalog,
        default_persona: str = "",
        calibration: TokenCalibration | None = None,
        on_owner_alert: OwnerAlert | None = None,
        on_answered: AnsweredHook | None = None,
        images: ImageSource | None = None,
        history_images: int = 3,
    ) -> None:
        self._store = store
        self._model = model
        self._models = models
        self._default_persona = default_persona
        self._default_persona_tokens = message_tokens(default_persona) if default_persona else 0
        self._calibration = calibration or TokenCalibration()
        self._on_owner_alert = on_owner_alert
        self._on_answered = on_answered
        self._images = images
        self._history_images = history_images

    async def answer(self, turn: Turn, writer: AnswerWriter, run: AnswerRun) -> AnswerResult:
        if turn.arriving is not None:  # an album: the rest of its photos
            turn = replace(turn, parts=await turn.arriving.collected(), arriving=None)
        question = turn.question()
        try:
            context = await self._load(turn, question, shrink=1)
        except HistoryUnavailable:
            log.warning("history unavailable for chat %s", turn.key.chat_id)
            await writer.finish("", footer=text("storage_unavailable", turn.language))
            return AnswerResult(Outcome.FAILED)
        preferences = Preferences.parse(context.preferences)
        seen = await self._see(turn, context, question, preferences)
        if isinstance(seen, str):  # the question's own image cannot be seen
            await writer.finish("", footer=text(seen, turn.language))
            return AnswerResult(Outcome.FAILED)
        model, images = seen
        result = AnswerResult(Outcome.FAILED, model=model.name)
        prompt = self._prompt(context, question, model, images, shrink=1)
        options = options_for(model, preferences, turn)
        error = await self._stream(
            turn, question, (model, images), options, prompt, writer, run, result
        )
        run.settled = True
        end = run.end
        result.outcome = decide(
            stopped=run.stopped,
            failed=error is not None,
            text=run.text,
            finish_reason=end.finish_reason if end else None,
        )
        result.answer = run.text
        result.finished_at = time.monotonic()
        result.error = error.kind if error is not None else None
        result.finish_reason = end.finish_reason if end else None
        if result.outcome is Outcome.COMPLETED and end is not None:
            result.usage = end.usage
            if end.usage is not None:
                self._calibration.observe(prompt.estimated_tokens, end.usage.prompt_tokens)
        notes = await self._notes(turn, prompt, result, error)
        if ENDINGS[result.outcome].stored:
            # sources as plain numbers: their links are for the user, not the model
            reply = cite(run.text, ()) or STOPPED_EMPTY
            if not await self._store_turn(turn, question, reply):
                notes.append(text("history_not_saved", turn.language))
            else:
                result.stored = True
        await writer.finish(
            with_sources(run.text, run.sources, text("sources", turn.language)),
            footer="\n".join(notes) or None,
            reasoning=_shown_reasoning(run.reasoning, preferences),
        )
        result.first_visible_at = writer.first_visible_at
        result.api_calls = writer.api_calls
        await self._answered(turn, result)
        return result

    async def skip(self, turn: Turn, writer: AnswerWriter) -> AnswerResult:
        """A turn /stop dropped before its answer began: its user is told, and the
        after-answer hook counts it."""
        result = AnswerResult(Outcome.SKIPPED, finished_at=time.monotonic())
        note = ENDINGS[Outcome.SKIPPED].note
        await writer.finish("", footer=text(note, turn.language) if note else None)
        await self._answered(turn, result)
        return result

    # -- the steps -----------------------------------------------------------------------

    async def _load(self, turn: Turn, question: Message, *, shrink: int) -> ConversationContext:
        # The chat's model is known only with the context, so the read covers the largest
        # budget any chat model has; the prompt then keeps what the chosen model takes.
        budget = self._calibration.unscale(self._models.largest_prompt_budget // shrink)
        # The store subtracts a stored persona itself; the question and a default persona
        # are ours to leave room for, so no history is read only to be dropped.
        history_budget = max(0, budget - question.tokens - self._default_persona_tokens)
        return await self._store.load_context(turn.key, history_budget)

    async def _see(
        self,
        turn: Turn,
        context: ConversationContext,
        question: Message,
        preferences: Preferences,
    ) -> tuple[ModelSpec, Mapping[str, str]] | str:
        """The turn's model and the images (by reference) its prompt may carry; instead,
        the note to show when an image of the question itself cannot be seen."""
        own = [part.ref for part in question.parts if isinstance(part, ImagePart)]
        if not self._models.for_turn(preferences.model, images=True).capabilities.images_in:
            if own:
                return "no_vision_model"
            return self._models.for_turn(preferences.model, search=turn.search), {}
        refs = attachable_images(context.messages, question, self._history_images)
        if self._images is None:
            fetched = FetchedImages(problems=dict.fromkeys(refs, "unavailable"))
        else:
            fetched = await self._images.fetch(refs) if refs else FetchedImages()
        for ref in own:
            if ref in fetched.problems:
                return _IMAGE_NOTES[fetched.problems[ref]]
        images = bool(fetched.data)
        model = self._models.for_turn(preferences.model, search=turn.search, images=images)
        return model, fetched.data

    def _prompt(
        self,
        context: ConversationContext,
        question: Message,
        model: ModelSpec,
        images: Mapping[str, str],
        *,
        shrink: int,
    ) -> Prompt:
        if context.persona is not None:
            persona, persona_tokens = context.persona.text, context.persona.tokens
        else:
            persona, persona_tokens = self._default_persona, self._default_persona_tokens
        return build_prompt(
            persona=persona or None,
            persona_tokens=persona_tokens,
            history=context.messages,
            user=question,
            budget_tokens=self._calibration.unscale(model.prompt_budget // shrink),
            images=images,
        )

    async def _stream(
        self,
        turn: Turn,
        question: Message,
        seen: tuple[ModelSpec, Mapping[str, str]],
        options: GLMOptions,
        prompt: Prompt,
        writer: AnswerWriter,
        run: AnswerRun,
        result: AnswerResult,
    ) -> GLMError | None:
        """Stream the answer; the error it ended with, if any. A prompt GLM finds too
        long is tried once more at half the budget, if no text was shown yet."""
        for attempt in (1, 2):
            result.request_sent_at = time.monotonic()
            result.estimated_prompt_tokens = self._calibration.scale(prompt.estimated_tokens)
            try:
                await generate(self._model, prompt.messages, options, writer, run, result)
                return None
            except GLMError as exc:
                if exc.kind is not ErrorKind.PROMPT_TOO_LONG or attempt == 2 or run.text:
                    return exc
                try:
                    context = await self._load(turn, question, shrink=2)
                except HistoryUnavailable:
                    return exc
                prompt = self._prompt(context, question, *seen, shrink=2)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if not run.stopped or (current is not None and current.cancelling()):
                    raise  # shutdown, not /stop
                return None
        return None  # not reached: the second attempt returns

    async def _notes(
        self, turn: Turn, prompt: Prompt, result: AnswerResult, error: GLMError | None
    ) -> list[str]:
        """The lines shown under the answer."""
        keys: list[str] = []
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
        return [text(key, turn.language) for key in keys]

    async def _error_note(self, turn: Turn, error: GLMError, prompt: Prompt) -> str:
        if error.kind is ErrorKind.BAD_REQUEST:
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
