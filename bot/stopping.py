"""/stop, wherever the answer runs: who may stop it, and what the user is told.

An answer may be stopped by whoever asked for it or by someone who administers the chat
(a group admin, the bot's owners; in a private chat, its user). This process's own
answer is decided here at once. With replicas, the answer may run on another one: the
request then goes there (`bot.cluster.stop_signal`), and that replica, which knows the asker,
decides with the same rule and says what it did.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Protocol

from bot.storage.keys import ConversationKey

__all__ = ["MayAdminister", "RemoteStops", "StopOutcome", "Stoppable", "Stopper"]


class StopOutcome(enum.Enum):
    STOPPED = "stopped"  # an answer was stopped (here or on another replica)
    NOT_ALLOWED = "not_allowed"  # an answer runs, but the requester may not stop it
    NOTHING = "nothing"  # no answer is being written for this conversation


# Whether the person asking to stop administers the chat; called only when needed
# (it may cost a getChatAdministrators call).
MayAdminister = Callable[[], Awaitable[bool]]


class Stoppable(Protocol):
    """What of `bot.turns.queue.TurnQueue` stopping needs."""

    def asker(self, key: ConversationKey) -> int | None: ...

    def stop(self, key: ConversationKey) -> bool: ...


class RemoteStops(Protocol):
    """Other replicas, as `bot.cluster.stop_signal.StopSignal` reaches them."""

    async def ask(
        self, key: ConversationKey, *, by: int, may_administer: MayAdminister
    ) -> StopOutcome: ...

    async def announce(self, key: ConversationKey) -> None: ...


async def _always() -> bool:
    return True


def anyone() -> MayAdminister:
    """For stops only the chat's own user can send (a private draft's Stop button)."""
    return _always


class Stopper:
    """The handlers' way to stop an answer; `remote` is None in a single process."""

    def __init__(self, conversation: Stoppable, remote: RemoteStops | None = None) -> None:
        self._conversation = conversation
        self._remote = remote

    async def stop(
        self, key: ConversationKey, *, by: int, may_administer: MayAdminister
    ) -> StopOutcome:
        """Stop the conversation's answer and the turns queued behind it, if `by` may."""
        outcome = await self.stop_here(key, by=by, may_administer=may_administer)
        if self._remote is None or outcome is StopOutcome.NOT_ALLOWED:
            return outcome
        if outcome is StopOutcome.STOPPED:
            # other replicas may hold turns queued behind the answer stopped here
            await self._remote.announce(key)
            return outcome
        return await self._remote.ask(key, by=by, may_administer=may_administer)

    async def stop_here(
        self, key: ConversationKey, *, by: int, may_administer: MayAdminister
    ) -> StopOutcome:
        """Stop this process's answer of `key`, if it runs one and `by` may stop it."""
        asker = self._conversation.asker(key)
        if asker is None:
            return StopOutcome.NOTHING
        if asker != by and not await may_administer():
            return StopOutcome.NOT_ALLOWED
        # the answer may have ended during the admin check
        return StopOutcome.STOPPED if self._conversation.stop(key) else StopOutcome.NOTHING

    def stopped_elsewhere(self, key: ConversationKey) -> None:
        """Another replica stopped the answer of `key`: drop the turns this process queued
        behind it (one that took the lease in the meantime was one of them: stopped too)."""
        self._conversation.stop(key)
