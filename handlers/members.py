"""Membership changes: drop the cached admin list so promotions take effect at once."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import ChatMemberUpdated

from bot.guards.admins import AdminChecker


async def on_member_changed(event: ChatMemberUpdated, admins: AdminChecker) -> None:
    if event.old_chat_member.status != event.new_chat_member.status:
        await admins.invalidate(event.chat.id)


async def on_bot_membership_changed(event: ChatMemberUpdated, admins: AdminChecker) -> None:
    await admins.invalidate(event.chat.id)


def create_router() -> Router:
    router = Router(name=__name__)
    router.chat_member.register(on_member_changed)
    router.my_chat_member.register(on_bot_membership_changed)
    return router
