"""A conversation turn: load the context, trim it, stream GLM's answer, store the turn.

Nothing here knows Telegram: answers go out through an `AnswerWriter` (implemented in
`bot.streaming`), and the model is anything with a `stream()` like `bot.llm.GLMClient`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bot.context import Prompt, build_prompt
from bot.history import HistoryStore, HistoryUnavailable, Rider, StoredMessage, riding
from bot.keys import ConversationKey
from bot.llm import ErrorKind, GLMError, GLMOptions, StreamEnd, StreamEvent, TextDelta, Usage
from bot.locks import ConversationLocks, TurnLocks
from bot.pending import JournalEntry, TurnJournal
from bot.texts import text
from bot.tokens import TokenCalibration, message_tokens

log = logging.getLogger(__name__)


class AnswerWriter(Protocol):
    """Where a growing answer goes (a Telegram message, a draft, a test double)."""

    async def begin(self) -> None: ...

    def update(self, markdown: str) -> None: ...

    async def finish(self, markdown: str, *, footer: str | None = None) -> None: ...

    async def aclose(self) -> None: ...


class ChatModel(Protocol):
    def stream(
        self, messages: list[dict[str, str]], options: GLMOptions
    ) -> AsyncIterator[StreamEvent]: ...


class DeliveryClaim(Protocol):
    """Whether this delivery of a message is its first: Telegram may deliver an update
    twice, and two replicas may both receive it (`bot.dedup.UpdateClaim`)."""

    def rider(self) -> Rider | None:
        """The claim, to send along with the context read; None once sent or settled."""
        ...

    async def settle(self) -> bool:
        """True for the first delivery; sends the claim now if no store carried it."""
        ...


@dataclass(frozen=True, slots=True)
class Turn:
    """One message that asks for an answer."""

    key: ConversationKey
    text: str
    user_id: int
    # Display name prefixed to the stored message so the model can tell group members
    # apart; None in private chats.
    speaker: str | None = None
    language: str | None = None
    # None when nothing else can have received the message (no dedup configured)
    claim: DeliveryClaim | None = None

    @property
    def stored_text(self) -> str:
        return f"{self.speaker}: {self.text}" if self.speaker else self.text


class Outcome(enum.Enum):
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"
    FILTERED = "filtered"
    SKIPPED = "skipped"  # cleared from the queue by /stop before it started
    DUPLICATE = "duplicate"  # another delivery of the same message was answered


@dataclass(slots=True)
class AnswerResult:
    outcome: Outcome
    answer: str = ""
    usage: Usage | None = None
    error: ErrorKind | None = None
    stored: bool = False
    started_at: float = field(default_factory=time.monotonic)
    request_sent_at: float | None = None
    first_token_at: float | None = None
    finished_at: float | None = None
    # From the writer: when the user first saw text (time.monotonic()) and the Bot API
    # calls the answer cost; None and 0 for writers that do not count.
    first_visible_at: float | None = None
    api_calls: int = 0
    # Calibrated estimate of the last prompt sent: what a stopped or cut answer (GLM
    # reports `usage` only at the end) is charged for its prompt.
    estimated_prompt_tokens: int = 0


@dataclass(slots=True)
class _Running:
    """The answer being generated in one conversation, so /stop can reach it."""

    asker: int
    task: asyncio.Task[None] | None = None
    stopped: bool = False
    text: str = ""
    end: StreamEnd | None = None
    # the outcome is decided: a /stop now would change nothing
    settled: bool = False


# Which message a user sees for each upstream failure.
_ERROR_TEXT: dict[ErrorKind, str] = {
    ErrorKind.RATE_LIMITED: "busy_retry",
    ErrorKind.OVERLOADED: "busy_retry",
    ErrorKind.SERVER: "upstream_error",
    ErrorKind.NETWORK: "upstream_error",
    ErrorKind.UNKNOWN: "upstream_error",
    ErrorKind.TIMEOUT: "timeout",
    ErrorKind.STALLED: "timeout",
    ErrorKind.PROMPT_TOO_LONG: "prompt_too_long",
    ErrorKind.FILTERED: "filtered",
    ErrorKind.NO_BALANCE: "service_unavailable",
    ErrorKind.AUTH: "service_unavailable",
    ErrorKind.BAD_REQUEST: "bad_request",
    ErrorKind.UNAVAILABLE: "temporarily_unavailable",
}

# Filled in for an answer the user stopped before any text arrived, so that the stored
# history keeps alternating user/assistant turns.
STOPPED_EMPTY = "(stopped before answering)"

OwnerAlert = Callable[[ErrorKind, str], Awaitable[None]]
# Called after every answer (e.g. to charge its tokens); its errors are logged, not raised.
AnsweredHook = Callable[[Turn, AnswerResult], Awaitable[None]]
# Called when an answer run by `start()` ended in an exception nothing handled (a bug),
# once it is logged: e.g. to count it.
FailedHook = Callable[[Turn, Exception], None]


class ConversationService:
    def __init__(
        self,
        *,
        store: HistoryStore,
        model: ChatModel,
        options: GLMOptions,
        context_tokens: int,
        default_persona: str = "",
        locks: TurnLocks | None = None,
        calibration: TokenCalibration | None = None,
        on_owner_alert: OwnerAlert | None = None,
        on_answered: AnsweredHook | None = None,
        journal: TurnJournal | None = None,
        on_failed: FailedHook | None = None,
    ) -> None:
        self.store = store
        self._model = model
        self._options = options
        self._context_tokens = context_tokens
        self._default_persona = default_persona
        self._default_persona_tokens = message_tokens(default_persona) if default_persona else 0
        self._locks = locks or ConversationLocks()
        self._calibration = calibration or TokenCalibration()
        self._on_owner_alert = on_owner_alert
        self._on_answered = on_answered
        self._on_failed = on_failed
        # records turns in progress, so a crash is reported to their users at restart
        self._journal = journal
        self._running: dict[ConversationKey, _Running] = {}
        # /stop also clears queued turns: a turn only runs if no /stop came since it queued
        self._epochs: dict[ConversationKey, int] = {}
        self._tasks: set[asyncio.Task[object]] = set()
        # answers run by start(), until their task ends (answer() leaves _tasks earlier)
        self._started: set[asyncio.Task[None]] = set()

    # -- commands ----------------------------------------------------------------------

    async def reset(self, key: ConversationKey) -> None:
        """Forget the history; the persona stays."""
        await self.store.clear(key)

    async def record(self, key: ConversationKey, speaker: str | None, message: str) -> None:
        """Store an unaddressed group message as context without answering it."""
        content = f"{speaker}: {message}" if speaker else message
        await self.store.append(key, [StoredMessage("user", content, message_tokens(content))])

    def is_answering(self, key: ConversationKey) -> bool:
        return key in self._running

    def waiting(self, key: ConversationKey) -> int:
        """Turns queued behind the running one."""
        return self._locks.waiting(key)

    def asker(self, key: ConversationKey) -> int | None:
        running = self._running.get(key)
        return running.asker if running else None

    def stop(self, key: ConversationKey) -> bool:
        """Stop the running answer and drop the turns queued behind it."""
        stopped = False
        if self._locks.waiting(key):
            self._epochs[key] = self._epochs.get(key, 0) + 1
            stopped = True
        running = self._running.get(key)
        if running is not None and not running.stopped and not running.settled:
            # before the stream began (prompt loading, between retries) too: the
            # stream is then cancelled as soon as it starts
            running.stopped = True
            if running.task is not None:
                running.task.cancel()
            stopped = True
        return stopped

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def drain(self, timeout: float) -> int:
        """Wait for running answers to finish, those started meanwhile too; returns how
        many were still running."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while pending := {task for task in (*self._tasks, *self._started) if not task.done()}:
            left = deadline - loop.time()
            if left <= 0:
                return len(pending)
            await asyncio.wait(pending, timeout=left)
        return 0

    # -- answering ---------------------------------------------------------------------

    async def start(self, turn: Turn, writer: AnswerWriter) -> asyncio.Task[None]:
        """Answer `turn` in a task of its own; return once it has taken its first step.

        Whoever starts it (an update's handler, with everything it references) is not
        kept alive for as long as the answer streams. The turn takes its place in the
        conversation's line at once: turns started one after another are answered in
        that order, and a /stop from then on drops it. `drain()` waits for the task. An
        exception escaping the answer is logged and reported to `on_failed`, not raised.
        """
        place = self._locks.place(turn.key)
        epoch = self._epochs.get(turn.key, 0)
        task = asyncio.create_task(
            self._answer_started(turn, writer, place, epoch), name=f"answer-{turn.key.chat_id}"
        )
        self._started.add(task)
        task.add_done_callback(self._started.discard)
        # One turn of the loop: the answer runs up to its first wait (its context read
        # sent to Redis) before the caller winds up (aiogram's middlewares and logging
        # after a handler), which then overlaps that wait instead of delaying it.
        await asyncio.sleep(0)
        return task

    async def _answer_started(
        self,
        turn: Turn,
        writer: AnswerWriter,
        place: contextlib.AbstractAsyncContextManager[None],
        epoch: int,
    ) -> None:
        try:
            async with place:
                await self._answer_queued(turn, writer, queued_at=epoch)
        except Exception as exc:
            # no handler awaits this any more to pass it to the dispatcher's error router
            log.error(
                "unexpected %s while answering in chat %s",
                type(exc).__name__,
                turn.key.chat_id,
                exc_info=exc,
            )
            if self._on_failed is not None:
                try:
                    self._on_failed(turn, exc)
                except Exception:
                    log.exception("the failed-answer hook failed for chat %s", turn.key.chat_id)

    async def answer(self, turn: Turn, writer: AnswerWriter) -> AnswerResult:
        """Answer one turn; waits behind any answer already running in the conversation."""
        return await self._answer_queued(turn, writer, queued_at=None)

    async def _answer_queued(
        self, turn: Turn, writer: AnswerWriter, *, queued_at: int | None
    ) -> AnswerResult:
        """`answer()`; `queued_at` is the conversation's /stop epoch when `start()` queued
        the turn (a /stop since then drops it), None to take it when the turn locks."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        entry: JournalEntry | None = None
        try:
            # The claim and the journal record go with the context read, unless that read
            # may wait behind another answer: then now (a repeated delivery must not
            # queue, and a queued turn must be on record).
            busy = not self._locks.idle(turn.key)
            if busy and not await self._first_delivery(turn):
                return AnswerResult(Outcome.DUPLICATE)
            if self._journal is not None:
                entry = self._journal.entry(turn)
                if busy:
                    await self._journal.record(entry)
            result = await self._answer_in_turn(turn, writer, entry, queued_at)
            if result.outcome is not Outcome.DUPLICATE:
                await self._answered(turn, result)
            return result
        except asyncio.CancelledError:
            entry = None  # cut off by shutdown, unanswered: left for the restart to report
            raise
        finally:
            try:
                await writer.aclose()
                if self._journal is not None and entry is not None:
                    await self._journal.end(entry)
            finally:
                # only now: drain() at shutdown waits for the journal too, whose client
                # is closed next (a command after that would open a connection anew)
                if task is not None:
                    self._tasks.discard(task)

    async def _answered(self, turn: Turn, result: AnswerResult) -> None:
        if self._on_answered is None:
            return
        try:
            await self._on_answered(turn, result)
        except Exception:
            # accounting must never cost the user an answer already delivered
            log.exception("the after-answer hook failed for chat %s", turn.key.chat_id)

    async def _answer_in_turn(
        self, turn: Turn, writer: AnswerWriter, entry: JournalEntry | None, queued_at: int | None
    ) -> AnswerResult:
        epoch = self._epochs.get(turn.key, 0) if queued_at is None else queued_at
        async with self._locks.hold(turn.key):
            if self._epochs.get(turn.key, 0) != epoch:
                return AnswerResult(Outcome.SKIPPED)
            running = _Running(asker=turn.user_id)
            self._running[turn.key] = running
            try:
                result = await self._answer(turn, writer, running, entry)
                # bot.streaming's writers count these; test doubles need not
                result.first_visible_at = getattr(writer, "first_visible_at", None)
                result.api_calls = getattr(writer, "api_calls", 0)
                return result
            finally:
                del self._running[turn.key]
                if not self._locks.waiting(turn.key):
                    self._epochs.pop(turn.key, None)

    async def _answer(
        self, turn: Turn, writer: AnswerWriter, running: _Running, entry: JournalEntry | None
    ) -> AnswerResult:
        result = AnswerResult(Outcome.FAILED)
        user = StoredMessage("user", turn.stored_text, message_tokens(turn.stored_text))
        notes: list[str] = []
        riders = riding(
            turn.claim.rider() if turn.claim is not None else None,
            entry.recording() if entry is not None else None,
        )
        prompt: Prompt | None
        try:
            prompt = await self._prompt(turn.key, user, shrink=1, riders=riders)
        except HistoryUnavailable:
            prompt = None
        if not await self._first_delivery(turn):
            return AnswerResult(Outcome.DUPLICATE)  # nothing shown, nothing stored
        if prompt is None:
            log.warning("history unavailable for chat %s", turn.key.chat_id)
            await writer.finish("", footer=text("storage_unavailable", turn.language))
            return result
        if entry is not None and entry.unsent and self._journal is not None:
            await self._journal.record(entry)  # a store without Redis cannot carry it
        if prompt.user_truncated:
            notes.append(text("question_truncated", turn.language))

        error: GLMError | None = None
        for attempt in (1, 2):
            try:
                result.request_sent_at = time.monotonic()
                result.estimated_prompt_tokens = self._calibration.scale(prompt.estimated_tokens)
                await self._generate(prompt, writer, running, result)
                error = None
                break
            except GLMError as exc:
                error = exc
                retry_shorter = (
                    exc.kind is ErrorKind.PROMPT_TOO_LONG and attempt == 1 and not running.text
                )
                if not retry_shorter:
                    break
                try:
                    prompt = await self._prompt(turn.key, user, shrink=2)
                except HistoryUnavailable:
                    break
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if not running.stopped or (current is not None and current.cancelling()):
                    raise  # shutdown or the handler itself was cancelled, not /stop
                break
        running.settled = True
        result.answer = running.text
        result.finished_at = time.monotonic()

        if running.stopped:
            result.outcome = Outcome.STOPPED
            notes.append(text("stopped", turn.language))
            reply = running.text or STOPPED_EMPTY
            await self._store_turn(turn, user, reply, result, notes, entry)
        elif error is not None:
            result.error = error.kind
            await self._report_error(turn, error, prompt)
            key = "interrupted" if running.text else _ERROR_TEXT[error.kind]
            notes.append(text(key, turn.language))
        else:
            end = running.end
            result.usage = end.usage if end else None
            if end and end.usage:
                self._calibration.observe(prompt.estimated_tokens, end.usage.prompt_tokens)
            if end and end.finish_reason == "sensitive":
                # The filtered exchange stays out of later context (it would be refused again).
                result.outcome = Outcome.FILTERED
                notes.append(text("filtered", turn.language))
            else:
                result.outcome = Outcome.COMPLETED
                if end and end.finish_reason == "length":
                    notes.append(text("cut_at_length", turn.language))
                await self._store_turn(turn, user, running.text, result, notes, entry)
        await writer.finish(running.text, footer="\n".join(notes) or None)
        return result

    async def _first_delivery(self, turn: Turn) -> bool:
        if turn.claim is None or await turn.claim.settle():
            return True
        log.info("a repeated delivery of a message in chat %s dropped", turn.key.chat_id)
        return False

    async def _prompt(
        self,
        key: ConversationKey,
        user: StoredMessage,
        *,
        shrink: int,
        riders: Sequence[Rider] = (),
    ) -> Prompt:
        budget = self._calibration.unscale(
            (self._context_tokens - self._options.max_tokens) // shrink
        )
        default_tokens = self._default_persona_tokens
        # The store subtracts a stored persona itself; the new message and a default
        # persona are ours to leave room for, so no history is read only to be dropped.
        history_budget = max(0, budget - user.tokens - default_tokens)
        context = await self.store.load_context(key, history_budget, riders=riders)
        if context.persona is not None:
            persona, persona_tokens = context.persona.text, context.persona.tokens
        else:
            persona, persona_tokens = self._default_persona, default_tokens
        return build_prompt(
            persona=persona or None,
            persona_tokens=persona_tokens,
            history=context.messages,
            user=user,
            budget_tokens=budget,
        )

    async def _generate(
        self, prompt: Prompt, writer: AnswerWriter, running: _Running, result: AnswerResult
    ) -> None:
        """Stream the answer in a task of its own, so that /stop can cancel just this."""

        async def consume() -> None:
            stream = self._model.stream(prompt.messages, self._options)
            try:
                async for event in stream:
                    if isinstance(event, TextDelta):
                        if not event.text:
                            continue
                        if result.first_token_at is None:
                            result.first_token_at = time.monotonic()
                        running.text += event.text
                        writer.update(running.text)
                    else:
                        running.end = event
            finally:
                # closes the HTTP stream at once when stopped or failed
                await _aclose(stream)

        running.task = asyncio.create_task(consume())
        if running.stopped:  # stopped before the stream began
            running.task.cancel()
        try:
            # "typing…" once the request is under way: one turn of the loop lets the
            # stream's task hand the request to the HTTP client, which then sends it
            # ahead of the indicator's own Bot API call
            await asyncio.sleep(0)
            if not running.stopped:
                await writer.begin()
            await running.task
        except asyncio.CancelledError:
            running.task.cancel()  # cut off before the await above passed it on
            raise
        finally:
            running.task = None

    async def _store_turn(
        self,
        turn: Turn,
        user: StoredMessage,
        reply: str,
        result: AnswerResult,
        notes: list[str],
        entry: JournalEntry | None,
    ) -> None:
        assistant = StoredMessage("assistant", reply, message_tokens(reply))
        # the turn leaves the journal with this append (on failure, answer() removes it)
        removal = entry.removal() if entry is not None else None
        try:
            await self.store.append(turn.key, [user, assistant], riders=riding(removal))
            result.stored = True
        except HistoryUnavailable:
            log.warning("could not store a turn of chat %s", turn.key.chat_id)
            notes.append(text("history_not_saved", turn.language))

    async def _report_error(self, turn: Turn, error: GLMError, prompt: Prompt) -> None:
        if error.kind is ErrorKind.BAD_REQUEST:
            # A malformed request is our bug: log its shape, never the content.
            shape = [(m["role"], len(m["content"])) for m in prompt.messages]
            log.error("GLM rejected a request (%s): roles and lengths %s", error, shape)
        else:
            log.warning("GLM failed for chat %s: %s", turn.key.chat_id, error)
        if error.kind in (ErrorKind.NO_BALANCE, ErrorKind.AUTH) and self._on_owner_alert:
            with contextlib.suppress(Exception):
                await self._on_owner_alert(error.kind, str(error))


async def _aclose(stream: AsyncIterator[StreamEvent]) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()
