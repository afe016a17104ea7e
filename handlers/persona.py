"""/persona: show, set, reset or pick a preset persona for this chat or topic."""

from __future__ import annotations

from datetime import UTC, datetime

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.admins import AdminChecker
from bot.formatting import plain_parts
from bot.personas import PersonaRejected, PersonaService
from bot.texts import text
from handlers.context import (
    conversation_key,
    language,
    sender_administers,
    set_by,
)


async def on_persona(
    message: Message, command: CommandObject, personas: PersonaService, admins: AdminChecker
) -> None:
    # Persona text goes back as plain text (no parse mode): nothing in it is interpreted.
    key = conversation_key(message)
    lang = language(message)
    args = (command.args or "").strip()
    verb, _, rest = args.partition(" ")
    verb = verb.lower()

    if not args:
        # A persona may be longer than one message once counted in UTF-16 units
        # (emoji count twice), as Telegram counts.
        for part in plain_parts(await _describe(personas, message)):
            await message.reply(part)
        return
    if verb == "list" and not rest:
        presets = personas.presets()
        lines = [f"{name} - {description}" for name, description in presets]
        await message.reply(
            text("persona_presets", lang) + "\n" + "\n".join(lines)
            if lines
            else text("persona_no_presets", lang)
        )
        return

    if not await sender_administers(message, admins):
        await message.reply(text("persona_admins_only", lang))
        return
    try:
        if verb == "reset" and not rest:
            await personas.reset(key)
            await message.reply(text("persona_reset", lang))
            return
        if verb == "use" and rest and " " not in rest.strip():
            await personas.use(key, rest.strip(), set_by=set_by(message))
        else:
            await personas.set(key, args, set_by=set_by(message))
    except PersonaRejected as rejected:
        await message.reply(
            text(f"persona_{rejected.reason}", lang, limit=str(personas.max_length))
        )
        return
    await message.reply(text("persona_set", lang))


async def _describe(personas: PersonaService, message: Message) -> str:
    lang = language(message)
    current = await personas.current(conversation_key(message))
    if current.stored is None:
        if not current.text:
            return text("persona_none", lang)
        return text("persona_default", lang) + "\n\n" + current.text
    when = datetime.fromtimestamp(current.stored.set_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    origin = f" ({current.stored.preset})" if current.stored.preset else ""
    header = text("persona_current", lang, who=current.stored.set_by, when=when)
    return f"{header}{origin}\n\n{current.text}"


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(on_persona, Command("persona"))
    return router
