"""The turns of a conversation, answered one at a time in the order they came.

Each busy conversation has a line of queued turns and one worker that answers them in
turn; an idle conversation costs nothing. The queue also owns what follows from that:

- /stop (`stop`) stops the running answer and drops the turns queued behind it; each
  dropped turn is told so when its place comes.
- At shutdown `drain` waits for the workers.
- An answer that fails unexpectedly (a bug) is logged, reported to ``on_failed``, and its
  user gets a short apology instead of silence.
- The crash journal records each turn when it is queued and forgets it when it is over.

With replicas (`bot.cluster`), a turn also takes its place in the conversation's line
across replicas when it is queued, and holds the conversation's lease while answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from bot.storage.keys import ConversationKey
from bot.texts import text
from bot.turns.answer import Answerer
from bot.turns.stream import AnswerRun
from bot.turns.types import AnswerWriter, FailedHook, Turn

__all__ = ["ConversationLeases", "Journal", "TurnQueue"]

log = logging.getLogger(__name__)


class Journal(Protocol):
    """`bot.turns.journal.TurnJournal`: turns in progress, for crash notices."""

    async def record(self, turn: Turn) -> str | None: ...

    async def end(self, ticket: str | None) -> None: ...


class ConversationLeases(Protocol):
    """One answer at a time per conversation across replicas (`bot.cluster.leases`)."""

    def place(self, key: ConversationKey) -> AbstractAsyncContextManager[None]:
        """A place in the conversation's line, taken now; ``hold`` inside it takes it."""
        ...

    def hold(self, key: ConversationKey) -> AbstractAsyncContextManager[None]: ...


@dataclass(eq=False, slots=True)
class _Queued:
    turn: Turn
    writer: AnswerWriter
    # the journal's ticket, once `submit` has written the turn down
    ticket: asyncio.Future[str | None]
    place: AbstractAsyncContextManager[None] | None
    dropped: bool = False


@dataclass(eq=False, slots=True)
class _Line:
    waiting: deque[_Queued] = field(default_factory=deque)
    running: AnswerRun | None = None
    worker: asyncio.Task[None] | None = None


class TurnQueue:
    def __init__(
        self,
        answerer: Answerer,
        *,
        journal: Journal | None = None,
        leases: ConversationLeases | None = None,
        on_failed: FailedHook | None = None,
    ) -> None:
        self._answerer = answerer
        self._journal = journal
        self._leases = leases
        self._on_failed = on_failed
        self._lines: dict[ConversationKey, _Line] = {}

    async def submit(self, turn: Turn, writer: AnswerWriter) -> None:
        """Queue `turn`; returns once it is written down, while it is answered in the
        conversation's worker (so the caller, an update's handling, is not kept alive
        for as long as the answer streams)."""
        key = turn.key
        ticket: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        place = self._leases.place(key) if self._leases is not None else None
        line = self._lines.get(key)
        if line is None:
            line = self._lines[key] = _Line()
            line.worker = asyncio.create_task(self._work(key, line), name=f"turns-{key.chat_id}")
        line.waiting.append(_Queued(turn, writer, ticket, place))
        written: str | None = None
        try:
            if self._journal is not None:
                written = await self._journal.record(turn)
        finally:
            ticket.set_result(written)

    def stop(self, key: ConversationKey) -> bool:
        """Stop the running answer and drop the turns queued behind it."""
        line = self._lines.get(key)
        if line is None:
            return False
        stopped = False
        for queued in line.waiting:
            stopped = stopped or not queued.dropped
            queued.dropped = True
        if line.running is not None and line.running.stop():
            stopped = True
        return stopped

    def asker(self, key: ConversationKey) -> int | None:
        """Who asked the answer being written in `key`, if one is."""
        line = self._lines.get(key)
        run = line.running if line is not None else None
        return run.asker if run is not None and run.holding else None

    def is_answering(self, key: ConversationKey) -> bool:
        return self.asker(key) is not None

    def waiting(self, key: ConversationKey) -> int:
        """Turns queued behind the running one (not those /stop dropped)."""
        line = self._lines.get(key)
        return 0 if line is None else sum(1 for queued in line.waiting if not queued.dropped)

    @property
    def in_flight(self) -> int:
        """Answers being written."""
        return sum(1 for line in self._lines.values() if line.running and line.running.holding)

    async def drain(self, timeout: float) -> int:
        """Wait for the queued and running turns, those queued meanwhile too; returns how
        many conversations were still busy."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while busy := {line.worker for line in self._lines.values() if line.worker is not None}:
            left = deadline - loop.time()
            if left <= 0:
                return len(busy)
            await asyncio.wait(busy, timeout=left)
        return 0

    # -- the worker of one conversation ------------------------------------------------

    async def _work(self, key: ConversationKey, line: _Line) -> None:
        try:
            while line.waiting:
                queued = line.waiting.popleft()
                # a turn /stop dropped is only told so: nothing left in it to stop
                line.running = AnswerRun(asker=queued.turn.user_id, stopped=queued.dropped)
                try:
                    await self._run(key, queued, line.running)
                finally:
                    line.running = None
        finally:
            # the line is empty (no await since the check), or the loop is shutting down
            if self._lines.get(key) is line:
                del self._lines[key]

    async def _run(self, key: ConversationKey, queued: _Queued, run: AnswerRun) -> None:
        ended = False
        try:
            async with queued.place or contextlib.nullcontext():
                await self._answer(key, queued, run)
            ended = True
        except Exception as exc:
            await self._failed(queued, exc)
            ended = True
        finally:
            with contextlib.suppress(Exception):
                await queued.writer.aclose()
            # cut off by shutdown, the turn stays in the journal for the restart to report
            if ended and self._journal is not None:
                # shielded: cancelling this worker must not cancel the future `submit` sets
                await self._journal.end(await asyncio.shield(queued.ticket))

    async def _answer(self, key: ConversationKey, queued: _Queued, run: AnswerRun) -> None:
        if queued.dropped:
            await self._tell_dropped(queued)
            return
        async with self._leases.hold(key) if self._leases else contextlib.nullcontext():
            if run.stopped:  # stopped while another replica held the conversation
                await self._tell_dropped(queued)
                return
            run.holding = True
            await self._answerer.answer(queued.turn, queued.writer, run)

    async def _tell_dropped(self, queued: _Queued) -> None:
        await self._answerer.skip(queued.turn, queued.writer)

    async def _failed(self, queued: _Queued, exc: Exception) -> None:
        turn = queued.turn
        # nothing awaits the worker to pass this on: logged here, with its traceback
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
        try:
            await queued.writer.finish("", footer=text("unexpected_error", turn.language))
        except Exception as apology_failed:
            log.warning("could not apologise in chat %s: %r", turn.key.chat_id, apology_failed)
