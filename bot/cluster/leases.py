"""One answer at a time per conversation across replicas: leases in Redis.

The turn queue's `ConversationLeases` port (``place(key)``, then ``hold(key)``).

How it works in Redis: `bot.cluster.lease_scripts`. In this process, per conversation:

- A live replica renews its lease and its tickets every ttl/3.
- In the process, the turns of one conversation wait in ticket order and only the first
  of them polls Redis (backing off up to ``poll_interval``); the others wait for it.
- If Redis fails, a turn falls back to in-process ordering only (logged and counted):
  the user then gets the store's "storage unavailable" answer rather than silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.cluster.lease_scripts import ACQUIRE, ENTER, LEAVE, RELEASE, RENEW
from bot.cluster.lease_state import Conversation, LeaseTurn, Reservation, run_script
from bot.storage.keys import ConversationKey, Keys

__all__ = ["RedisLeases", "Reservation"]

log = logging.getLogger(__name__)

# First pause of a waiting turn between two attempts; doubled up to poll_interval.
_FIRST_POLL = 0.005

ErrorHook = Callable[[str], None]


# The reservation of the update being handled, set around its handling, or the place
# taken for the turn this task runs (`place`): a hold() of the same conversation in this
# context takes that place instead of a new one.
_current: ContextVar[Reservation | None] = ContextVar("glmbot_lease_reservation", default=None)


class RedisLeases:
    """Conversation leases shared by every replica on one Redis; see the module docstring."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        ttl: float = 30.0,
        poll_interval: float = 0.05,
        on_error: ErrorHook | None = None,
    ) -> None:
        if ttl <= 0 or poll_interval <= 0:
            raise ValueError("ttl and poll_interval must be positive")
        self._keys = keys
        self._ttl = ttl
        self._ttl_ms = max(1, int(ttl * 1000))
        self._poll_interval = poll_interval
        self._on_error = on_error
        self._redis = redis
        self._enter_script = redis.register_script(ENTER)
        self._acquire_script = redis.register_script(ACQUIRE)
        self._renew_script = redis.register_script(RENEW)
        self._release_script = redis.register_script(RELEASE)
        self._leave_script = redis.register_script(LEAVE)
        self._conversations: dict[ConversationKey, Conversation] = {}
        self._arrivals = itertools.count()

    # -- the ConversationLocks interface ------------------------------------------------

    @asynccontextmanager
    async def hold(self, key: ConversationKey) -> AsyncIterator[None]:
        """Wait for this conversation's turn across all replicas, then hold it.

        Inside `reserved(r)` for this conversation, or in the task `place(key)` was taken
        for, the turn takes that place in line.
        """
        reservation = _current.get()
        conv = self._conversations.get(key)
        if (
            reservation is not None
            and reservation._owner is self
            and reservation.key == key
            and conv is not None
            and not reservation._turn.taken
            and not reservation._turn.done
        ):
            turn = reservation._turn
            turn.claimed = turn.taken = True
            fresh = not turn.asked
        else:
            conv = self._conversation(key)
            conv.users += 1
            turn = LeaseTurn(uuid.uuid4().hex, next(self._arrivals))
            fresh = True
        try:
            if fresh:
                await self._take_ticket(key, conv, turn, may_take=conv.holder is None)
            await self._wait_turn(key, conv, turn)
        except BaseException:
            await self._leave(key, conv, turn)
            raise
        try:
            yield
        finally:
            await self._release(key, conv, turn)

    def place(self, key: ConversationKey) -> AbstractAsyncContextManager[None]:
        """A place in line for a turn about to run in a task of its own (see
        `bot.locks.TurnLocks.place`): the place reserved when its update arrived, if any,
        else a new one whose ticket is taken when its hold() comes."""
        reservation = _current.get()
        if (
            reservation is not None
            and reservation._owner is self
            and reservation.key == key
            and key in self._conversations
            and not reservation._turn.claimed
            and not reservation._turn.done
        ):
            # claimed now: the update's handling, which ends before the turn's hold()
            # comes, must not give the place up (`release_unclaimed`)
            turn = reservation._turn
            turn.claimed = True
        else:
            conv = self._conversation(key)
            conv.users += 1
            turn = LeaseTurn(uuid.uuid4().hex, next(self._arrivals))
            reservation = Reservation(key, turn, self)
        turn.taken = False
        turn.reserved_at = asyncio.get_running_loop().time()
        return self._entered(reservation)

    def idle(self, key: ConversationKey) -> bool:
        """Never known here: another replica may hold the lease."""
        return False

    def waiting(self, key: ConversationKey) -> int:
        """Turns of this process queued behind the running one (or behind another replica);
        reservations not yet claimed by a turn do not count."""
        conv = self._conversations.get(key)
        if conv is None:
            return 0
        unclaimed = sum(1 for t in conv.waiters if not t.claimed)
        return conv.users - unclaimed - (1 if conv.holder is not None else 0)

    async def held_elsewhere(self, key: ConversationKey) -> bool:
        """Whether another replica holds this conversation's lease: it is answering there,
        or about to (a place reserved for an update it is still reading). One round trip;
        False when Redis cannot tell."""
        try:
            holder = await self._redis.get(self._keys_of(key)[0])
        except RedisError as exc:
            log.warning("could not read the lease of chat %s: %s", key.chat_id, exc)
            if self._on_error is not None:
                self._on_error("lease_read")
            return False
        if holder is None:
            return False
        token = holder.decode() if isinstance(holder, bytes) else str(holder)
        conv = self._conversations.get(key)
        ours = [] if conv is None else [conv.holder, *conv.waiters]
        return all(turn is None or turn.token != token for turn in ours)

    # -- reservations: a place in line from the moment an update arrives ------------------

    async def reserve(self, key: ConversationKey) -> Reservation:
        """Queue for `key` now, before the update that may ask is even parsed, so that its
        place in line is its arrival at the webhook, not the end of its pre-processing.

        Run the update's handling inside `reserved()`, then `release_unclaimed()`.
        """
        conv = self._conversation(key)
        conv.users += 1
        turn = LeaseTurn(
            uuid.uuid4().hex,
            next(self._arrivals),
            claimed=False,
            taken=False,
            reserved_at=asyncio.get_running_loop().time(),
        )
        try:
            await self._take_ticket(key, conv, turn, may_take=conv.holder is None)
        except BaseException:
            await self._leave(key, conv, turn)
            raise
        return Reservation(key, turn, self)

    @staticmethod
    @contextlib.contextmanager
    def reserved(reservation: Reservation | None) -> Iterator[None]:
        """Make `reservation` the current one (tasks created inside inherit it)."""
        token = _current.set(reservation)
        try:
            yield
        finally:
            _current.reset(token)

    @staticmethod
    def current() -> Reservation | None:
        return _current.get()

    async def release_unclaimed(self, reservation: Reservation) -> None:
        """Give the place up unless a turn took it (that turn releases it when done)."""
        turn = reservation._turn
        conv = self._conversations.get(reservation.key)
        if conv is not None and not turn.claimed and not turn.done:
            await self._leave(reservation.key, conv, turn)

    @asynccontextmanager
    async def _entered(self, reservation: Reservation) -> AsyncIterator[None]:
        with self.reserved(reservation):
            try:
                yield
            finally:
                turn = reservation._turn
                conv = self._conversations.get(reservation.key)
                if conv is not None and not turn.taken and not turn.done:
                    await self._leave(reservation.key, conv, turn)

    async def aclose(self) -> None:
        """Stop renewing (leases still held then expire after ttl)."""
        keepers = [c.keeper for c in self._conversations.values() if c.keeper is not None]
        for keeper in keepers:
            keeper.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)

    # -- internals ----------------------------------------------------------------------

    def _conversation(self, key: ConversationKey) -> Conversation:
        conv = self._conversations.get(key)
        if conv is None:
            conv = self._conversations[key] = Conversation()
            conv.keeper = asyncio.create_task(self._keep(key, conv))
        return conv

    def _keys_of(self, key: ConversationKey) -> list[str]:
        return self._keys.lease(key)

    def _failed(self, operation: str, key: ConversationKey, exc: Exception) -> None:
        log.warning(
            "lease %s failed for chat %s, ordering is per process until Redis is back: %s",
            operation,
            key.chat_id,
            exc,
        )
        if self._on_error is not None:
            self._on_error(f"lease_{operation}")

    async def _take_ticket(
        self, key: ConversationKey, conv: Conversation, turn: LeaseTurn, *, may_take: bool
    ) -> None:
        turn.in_redis = turn.asked = True
        try:
            seq, taken = await run_script(
                self._enter_script,
                keys=self._keys_of(key),
                args=[turn.token, self._ttl_ms, int(may_take)],
            )
        except RedisError as exc:
            self._failed("enter", key, exc)
            turn.order, turn.ticketed, turn.in_redis = (math.inf, turn.arrival), False, False
        else:
            turn.order, turn.ticketed = (int(seq), turn.arrival), True
            if int(taken) == 1:
                turn.leased = True
                conv.holder = turn
                return
        conv.queue(turn)

    async def _wait_turn(self, key: ConversationKey, conv: Conversation, turn: LeaseTurn) -> None:
        pause = _FIRST_POLL
        while conv.holder is not turn:
            delay: float | None = None
            if conv.holder is None and conv.first() is turn:
                if not turn.ticketed:
                    conv.waiters.remove(turn)
                    conv.holder = turn
                    return
                try:
                    state = int(
                        await run_script(
                            self._acquire_script,
                            keys=self._keys_of(key)[:3],
                            args=[turn.token, self._ttl_ms],
                        )
                    )
                except RedisError as exc:
                    self._failed("acquire", key, exc)
                    self._requeue(conv, turn, ticketed=False)
                    continue
                if state == 1:
                    conv.waiters.remove(turn)
                    turn.leased = True
                    conv.holder = turn
                    return
                if state == -1:
                    # our ticket expired (renewals failed for a whole ttl): queue again
                    conv.waiters.remove(turn)
                    await self._take_ticket(key, conv, turn, may_take=False)
                    continue
                delay, pause = pause, min(pause * 2, self._poll_interval)
            else:
                pause = _FIRST_POLL
            changed = conv.changed
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
            # that lands as its inner wait finishes, and the turn would then wait forever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await changed.wait()

    def _requeue(self, conv: Conversation, turn: LeaseTurn, *, ticketed: bool) -> None:
        conv.waiters.remove(turn)
        turn.ticketed = ticketed
        if not ticketed:
            turn.order = (math.inf, turn.arrival)
        conv.queue(turn)
        conv.pulse()

    async def _release(self, key: ConversationKey, conv: Conversation, turn: LeaseTurn) -> None:
        try:
            if turn.leased:
                # from now on a renewal still in flight may find the lease gone: not a loss
                turn.leased = False
                try:
                    await run_script(
                        self._release_script, keys=self._keys_of(key)[:1], args=[turn.token]
                    )
                except RedisError as exc:
                    # the lease then expires after ttl; the next turn waits until then
                    self._failed("release", key, exc)
        finally:
            turn.leased, turn.done = False, True
            conv.holder = None
            self._done(key, conv)

    async def _leave(self, key: ConversationKey, conv: Conversation, turn: LeaseTurn) -> None:
        """A turn gives up (cancelled while waiting): drop its ticket or lease."""
        try:
            # even without an answer: a cancelled enter may have queued a ticket or taken
            # the lease without our hearing of it
            if turn.in_redis:
                await run_script(self._leave_script, keys=self._keys_of(key)[:3], args=[turn.token])
        except RedisError as exc:
            self._failed("leave", key, exc)  # the ticket expires after ttl
        finally:
            turn.done = True
            if conv.holder is turn:
                conv.holder = None
            if turn in conv.waiters:
                conv.waiters.remove(turn)
            self._done(key, conv)

    def _done(self, key: ConversationKey, conv: Conversation) -> None:
        conv.users -= 1
        conv.pulse()
        if conv.users == 0:
            if conv.keeper is not None:
                conv.keeper.cancel()
            if self._conversations.get(key) is conv:
                del self._conversations[key]

    async def _keep(self, key: ConversationKey, conv: Conversation) -> None:
        """Renew this process's lease and tickets of one conversation every ttl/3."""
        keys = self._keys_of(key)[:3]
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._ttl / 3)
            for turn in conv.lost(loop.time() - self._ttl):
                log.warning("dropping a lost reservation of chat %s", key.chat_id)
                await self._leave(key, conv, turn)
            holder = conv.holder.token if conv.holder is not None and conv.holder.leased else ""
            tickets = [t.token for t in conv.waiters if t.ticketed]
            if not holder and not tickets:
                continue
            try:
                held = await run_script(
                    self._renew_script, keys=keys, args=[self._ttl_ms, holder, *tickets]
                )
            except RedisError as exc:
                self._failed("renew", key, exc)
                continue
            current = conv.holder
            if holder and not int(held) and current and current.leased and current.token == holder:
                # paused or cut off for a whole ttl: another replica may be answering too
                log.warning("lease of chat %s expired while answering", key.chat_id)
                if self._on_error is not None:
                    self._on_error("lease_lost")
