"""aiogram routers: thin translations between Telegram updates and the core.

Routers are built per dispatcher (an aiogram router can belong to one parent only).
Order matters: commands first, then the chat-type specific routers. Messages from other
bots and from channels linked to a group never reach any of them.
"""

from __future__ import annotations

from aiogram import F, Router

from handlers import (
    chat,
    commands,
    errors,
    group,
    image,
    listen,
    media,
    members,
    model,
    persona,
    photos,
    preferences,
    search,
    unsupported,
    usage,
)
from handlers.context import from_person
from handlers.filters import inline
from handlers.guards import GuardMiddleware


def get_routers() -> list[Router]:
    """Every router, in the order the dispatcher should try them."""
    people = Router(name="people")
    people.message.filter(inline(from_person))
    # access, rate limits and quotas, once the handler is known
    people.message.middleware(GuardMiddleware())

    private = Router(name="private")
    private.message.filter(inline(F.chat.type == "private"))
    private.include_routers(
        photos.create_private_router(), chat.create_router(), unsupported.create_router()
    )

    groups = Router(name="groups")
    groups.message.filter(inline(F.chat.type.in_({"group", "supergroup"})))
    groups.include_routers(
        listen.create_router(), photos.create_group_router(), group.create_router()
    )

    people.include_routers(
        commands.create_router(),
        persona.create_router(),
        model.create_router(),
        preferences.create_router(),
        # before the chat routers: a private chat's router takes every text
        search.create_router(),
        usage.create_router(),
        # voice and documents, in private chats and groups (its filters tell them apart)
        media.create_router(),
        image.create_router(),
        private,
        groups,
    )
    # errors: unhandled exceptions of any router end there (logged, never fatal)
    return [people, members.create_router(), errors.create_router()]
