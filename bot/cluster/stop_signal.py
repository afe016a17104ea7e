"""/stop across replicas: requests and their answers on one Redis pub/sub channel.

The replica that receives /stop may not be the one writing the answer, and does not know
who asked for it, so it cannot tell "stopped" from "not yours to stop" by itself. It asks:

1. Does another replica hold the conversation's lease (`RedisLeases.held_elsewhere`, one
   GET)? If not, nothing is being written anywhere: "nothing to stop", at once.
2. It publishes a ``stop`` request carrying the requester and whether they administer the
   chat (checked here, where the update is).
3. The replica writing the answer applies the rule it applies to its own /stop (the asker
   or an admin), and publishes ``stopped`` or ``refused``. ``stopped`` also tells every
   other replica to drop the turns it queued behind that answer, as a local /stop does.
4. The requester reports what it heard. No reply within ``reply_timeout`` means the lease
   was not an answer after all (a place reserved for an update that asks nothing, an
   answer that ended meanwhile, a holder cut off from Redis): "nothing to stop".

So the user hears the truth (stopped, not allowed, nothing to stop), usually within a
millisecond or two, and at worst after ``reply_timeout``. A stop is never stored for
later: one that arrives when nothing runs must not cut a later answer.

Messages are JSON on ``<prefix>:b<bot>:stop``; PUBLISH reaches subscribers on every node
of a Cluster. The subscriber reconnects after Redis errors (backing off up to
``_MAX_RETRY_PAUSE``); what is published while it is away is lost, which a requester sees
as no reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.stopping import MayAdminister, StopOutcome
from bot.storage.background import halt
from bot.storage.keys import ConversationKey, Keys

__all__ = ["LocalStops", "StopSignal"]

log = logging.getLogger(__name__)

# Longest wait at start for the first subscription (Redis may be down: start anyway).
_SUBSCRIBE_TIMEOUT = 5.0
# How often the subscriber looks up from an idle channel to see whether it should stop.
_IDLE_WAKE = 1.0
_FIRST_RETRY_PAUSE = 0.1
_MAX_RETRY_PAUSE = 5.0

ErrorHook = Callable[[str], None]
HeldElsewhere = Callable[[ConversationKey], Awaitable[bool]]


class LocalStops(Protocol):
    """This replica's side (`bot.stopping.Stopper`)."""

    async def stop_here(
        self, key: ConversationKey, *, by: int, may_administer: MayAdminister
    ) -> StopOutcome: ...

    def stopped_elsewhere(self, key: ConversationKey) -> None: ...


def _verdict(admin: bool) -> MayAdminister:
    async def decided() -> bool:
        return admin

    return decided


class StopSignal:
    """Stop requests between replicas; `start`/`stop` with the dispatcher."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        held_elsewhere: HeldElsewhere,
        reply_timeout: float = 2.0,
        on_error: ErrorHook | None = None,
        instance: str | None = None,
    ) -> None:
        self._redis = redis
        self._channel = keys.stop_channel()
        self._held_elsewhere = held_elsewhere
        self._reply_timeout = reply_timeout
        self._on_error = on_error
        self.instance = instance or uuid.uuid4().hex
        self._local: LocalStops | None = None
        self._replies: dict[str, asyncio.Future[StopOutcome]] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._subscribed = asyncio.Event()

    def serve(self, local: LocalStops) -> None:
        """Answer other replicas' requests with `local`."""
        self._local = local

    @property
    def subscribed(self) -> bool:
        """Whether requests from other replicas reach this one right now."""
        return self._subscribed.is_set()

    # -- the requester's side -------------------------------------------------------------

    async def ask(
        self, key: ConversationKey, *, by: int, may_administer: MayAdminister
    ) -> StopOutcome:
        """Stop the answer of `key` if another replica writes it and `by` may stop it."""
        if not await self._held_elsewhere(key):
            return StopOutcome.NOTHING
        request = uuid.uuid4().hex
        reply: asyncio.Future[StopOutcome] = asyncio.get_running_loop().create_future()
        self._replies[request] = reply
        try:
            admin = await may_administer()
            await self._publish(
                {"kind": "stop", "id": request, **_conversation(key), "by": by, "admin": admin}
            )
            async with asyncio.timeout(self._reply_timeout):
                return await reply
        except TimeoutError:
            return StopOutcome.NOTHING
        except RedisError as exc:
            self._failed("publish", exc)
            return StopOutcome.NOTHING
        finally:
            del self._replies[request]

    async def announce(self, key: ConversationKey) -> None:
        """This replica stopped the answer of `key`: others drop the turns queued behind it."""
        try:
            await self._publish({"kind": "stopped", "id": None, **_conversation(key)})
        except RedisError as exc:
            self._failed("publish", exc)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe (waiting a little for the first subscription), then listen."""
        if self._task is not None:
            return
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._listen(self._stopping), name="stop-signal")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_SUBSCRIBE_TIMEOUT):
                await self._subscribed.wait()
        if not self._subscribed.is_set():
            log.warning("stop signal: not subscribed yet; /stop reaches this replica later")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        await halt(task, self._stopping)

    # -- the subscriber -------------------------------------------------------------------

    async def _listen(self, stopping: asyncio.Event) -> None:
        pause = _FIRST_RETRY_PAUSE
        while not stopping.is_set():
            try:
                # a Cluster client learns its slots on its first command, and its pub/sub
                # picks a node by the channel's slot: learn them first
                await self._redis.initialize()
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    while not stopping.is_set():
                        message = await pubsub.get_message(timeout=_IDLE_WAKE)
                        if message is None:
                            continue
                        if message["type"] == "subscribe":
                            self._subscribed.set()
                            pause = _FIRST_RETRY_PAUSE
                        elif message["type"] == "message":
                            await self._received(message["data"])
            except (RedisError, OSError) as exc:
                self._failed("subscribe", exc)
            except Exception:  # a bug here must not end /stop across replicas for good
                log.exception("stop signal: the subscriber failed")
            self._subscribed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await stopping.wait()
            pause = min(pause * 2, _MAX_RETRY_PAUSE)

    async def _received(self, data: str | bytes) -> None:
        try:
            message = json.loads(data)
            kind = message["kind"]
            origin = message["from"]
        except (ValueError, TypeError, KeyError):
            log.warning("stop signal: ignoring a malformed message")
            return
        if origin == self.instance:
            return
        if kind == "stop":
            await self._answer(message)
        elif kind in ("stopped", "refused"):
            if kind == "stopped" and self._local is not None:
                key = _key(message)
                if key is not None:
                    self._local.stopped_elsewhere(key)
            reply = self._replies.get(str(message.get("id")))
            if reply is not None and not reply.done():
                outcome = StopOutcome.STOPPED if kind == "stopped" else StopOutcome.NOT_ALLOWED
                reply.set_result(outcome)

    async def _answer(self, message: dict[str, Any]) -> None:
        """Another replica received /stop for a conversation: stop it if it runs here."""
        key = _key(message)
        by = message.get("by")
        if self._local is None or key is None or not isinstance(by, int):
            return
        admin = message.get("admin") is True
        outcome = await self._local.stop_here(key, by=by, may_administer=_verdict(admin))
        if outcome is StopOutcome.NOTHING:
            return  # not answering here; the replica that is answers
        kind = "stopped" if outcome is StopOutcome.STOPPED else "refused"
        try:
            await self._publish({"kind": kind, "id": message.get("id"), **_conversation(key)})
        except RedisError as exc:
            self._failed("publish", exc)

    async def _publish(self, message: dict[str, Any]) -> None:
        await self._redis.publish(self._channel, json.dumps({**message, "from": self.instance}))

    def _failed(self, operation: str, exc: Exception) -> None:
        log.warning("stop signal: %s failed: %s", operation, exc)
        if self._on_error is not None:
            self._on_error(f"stop_signal_{operation}")


def _conversation(key: ConversationKey) -> dict[str, int | None]:
    return {"chat": key.chat_id, "thread": key.thread_id}


def _key(message: dict[str, Any]) -> ConversationKey | None:
    chat, thread = message.get("chat"), message.get("thread")
    if not isinstance(chat, int) or not (thread is None or isinstance(thread, int)):
        return None
    return ConversationKey(chat, thread)
