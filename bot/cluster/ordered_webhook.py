"""Webhook updates of replicas, answered in the order Telegram delivered them: a text
message takes its place in its conversation's queue before the webhook answers, however
long each replica then takes to get from the update to the answer."""

from __future__ import annotations

from aiogram import Bot, Dispatcher
from aiogram.types import Update

from bot.cluster.leases import RedisLeases
from bot.storage.keys import ConversationKey
from bot.webhook.intake import UpdateRequestHandler

__all__ = ["OrderedRequestHandler", "conversation_of"]


def conversation_of(update: Update) -> ConversationKey | None:
    """The conversation a text message would be answered in (as `handlers.context`
    derives it), or None for updates that never start an answer."""
    message = update.message
    if message is None or message.text is None:
        return None
    thread = message.message_thread_id if message.is_topic_message else None
    return ConversationKey(message.chat.id, thread)


class OrderedRequestHandler(UpdateRequestHandler):
    """Plus a place in the conversation's queue, taken on arrival.

    The reservation travels with the background task through a context variable (a task
    copies the context it was created in) and is given up when the update's handling
    ends without a turn having claimed it (a turn claims it as it is started, before
    its own task runs: `bot.cluster.leases.RedisLeases.place`).
    """

    def __init__(
        self, dispatcher: Dispatcher, bot: Bot, *, secret_token: str, leases: RedisLeases
    ) -> None:
        super().__init__(dispatcher, bot, secret_token=secret_token)
        self._leases = leases

    async def accept(self, update: Update) -> None:
        key = conversation_of(update)
        if key is None:
            await super().accept(update)
            return
        reservation = await self._leases.reserve(key)
        try:
            with self._leases.reserved(reservation):
                await super().accept(update)
        except BaseException:
            await self._leases.release_unclaimed(reservation)
            raise

    async def feed(self, update: Update) -> None:
        reservation = self._leases.current()
        try:
            await super().feed(update)
        finally:
            if reservation is not None:
                await self._leases.release_unclaimed(reservation)
