"""/persona: show, set, reset or pick a preset persona for this chat or topic."""

from __future__ import annotations

from datetime import UTC, datetime

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.guards.admins import AdminChecker
from bot.personas import PersonaRejected, PersonaService
from bot.streaming import StreamDelivery
from bot.texts import text
from handlers.context import (
    conversation_key,
    is_private,
    language,
    reply,
    sender_administers,
    set_by,
)


async def on_persona(
    message: Message,
    command: CommandObject,
    personas: PersonaService,
    admins: AdminChecker,
    delivery: StreamDelivery,
) -> None:
    # Persona text goes back as plain text (no parse mode): nothing in it is interpreted;
    # one longer than a message is split by the reply.
    key = conversation_key(message)
    lang = language(message)
    args = (command.args or "").strip()
    verb, _, rest = args.partition(" ")
    verb = verb.lower()

    if not args:
        await reply(message, delivery, await _describe(personas, message))
        return
    if verb == "list" and not rest:
        await reply(message, delivery, _presets(personas, message))
        return

    if not await sender_administers(message, admins):
        await reply(message, delivery, text("persona_admins_only", lang))
        return
    try:
        if verb == "reset" and not rest:
            await personas.reset(key)
            await reply(message, delivery, text("persona_reset", lang))
            return
        if verb == "use" and rest and " " not in rest.strip():
            await personas.use(key, rest.strip(), set_by=set_by(message))
        else:
            await personas.set(key, args, set_by=set_by(message))
    except PersonaRejected as rejected:
        refusal = text(f"persona_{rejected.reason}", lang, limit=str(personas.max_length))
        await reply(message, delivery, refusal)
        return
    await reply(message, delivery, text("persona_set", lang))


def _presets(personas: PersonaService, message: Message) -> str:
    lang = language(message)
    lines = [f"{name} - {description}" for name, description in personas.presets()]
    if not lines:
        return text("persona_no_presets", lang)
    # in a group, only its admins may pick one
    header = text("persona_presets" if is_private(message) else "persona_presets_group", lang)
    return "\n".join([header, *lines])


async def _describe(personas: PersonaService, message: Message) -> str:
    lang = language(message)
    current = await personas.current(conversation_key(message))
    if current.stored is None:
        if not current.text:
            return text("persona_none" if is_private(message) else "persona_none_group", lang)
        return text("persona_default", lang) + "\n\n" + current.text
    when = datetime.fromtimestamp(current.stored.set_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    origin = f" ({current.stored.preset})" if current.stored.preset else ""
    header = text("persona_current", lang, who=current.stored.set_by, when=when)
    return f"{header}{origin}\n\n{current.text}"


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(on_persona, Command("persona"))
    return router
