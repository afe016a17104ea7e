"""/model: show this chat's model and the catalog's chat models as buttons; `/model NAME`
or a button switches the chat (private chat: its user; group: those who may change the
persona). The next turn reads the choice with its context (`bot.turns.answer`)."""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.guards.admins import AdminChecker
from bot.models import ModelCatalog, ModelSpec
from bot.preferences import ChatPreferences
from bot.texts import text
from handlers.context import is_private, language, sender_administers
from handlers.filters import inline

log = logging.getLogger(__name__)

# callback_data of a model button: the prefix, then the model's name
BUTTON_PREFIX = "model:"
# Telegram's limit on callback_data, in bytes
_CALLBACK_DATA_LIMIT = 64


async def on_model(
    message: Message,
    command: CommandObject,
    models: ModelCatalog,
    preferences: ChatPreferences,
    admins: AdminChecker,
) -> None:
    lang = language(message)
    name = (command.args or "").strip()
    if not name:
        current = await _current(message.chat.id, models, preferences)
        await message.reply(
            text("model_current", lang, model=current.name),
            reply_markup=_keyboard(models, current, lang),
        )
        return
    if not _offered(models, name):
        await message.reply(_unknown(models, name, lang))
        return
    if not await sender_administers(message, admins):
        await message.reply(text("model_admins_only", lang))
        return
    await preferences.set(message.chat.id, "model", name)
    await message.reply(text("model_set", lang, model=name))


async def on_model_button(
    query: CallbackQuery,
    models: ModelCatalog,
    preferences: ChatPreferences,
    admins: AdminChecker,
) -> None:
    lang = query.from_user.language_code
    message = query.message
    name = (query.data or "").removeprefix(BUTTON_PREFIX)
    if not isinstance(message, Message):  # too old for Telegram to send it back
        await query.answer()
        return
    if not _offered(models, name):  # a button of a model removed since
        await query.answer(_unknown(models, name, lang), show_alert=True)
        return
    chat_id = message.chat.id
    if not await admins.may_administer(chat_id, query.from_user.id, is_private=is_private(message)):
        await query.answer(text("model_admins_only", lang), show_alert=True)
        return
    await preferences.set(chat_id, "model", name)
    await query.answer(text("model_set", lang, model=name))
    current = models.for_chat(name)
    try:
        await message.edit_text(
            text("model_current", lang, model=current.name),
            reply_markup=_keyboard(models, current, lang),
        )
    except TelegramBadRequest as exc:  # unchanged (pressed twice) or deleted meanwhile
        log.debug("model list of chat %s not updated: %s", chat_id, exc)


async def _current(chat_id: int, models: ModelCatalog, preferences: ChatPreferences) -> ModelSpec:
    return models.for_chat((await preferences.get(chat_id)).model)


def _offered(models: ModelCatalog, name: str) -> bool:
    return any(model.name == name for model in models.chat_models())


def _unknown(models: ModelCatalog, name: str, lang: str | None) -> str:
    names = ", ".join(model.name for model in models.chat_models())
    return text("model_unknown", lang, name=name[:64], names=names)


def _keyboard(models: ModelCatalog, current: ModelSpec, lang: str | None) -> InlineKeyboardMarkup:
    """One button per chat model; the current one ticked."""
    builder = InlineKeyboardBuilder()
    for model in models.chat_models():
        data = BUTTON_PREFIX + model.name
        if len(data.encode()) > _CALLBACK_DATA_LIMIT:
            continue  # still reachable by /model NAME
        label = f"✓ {model.name}" if model.name == current.name else model.name
        if model.prices.input == model.prices.output == 0:
            label += f" · {text('model_free', lang)}"
        builder.button(text=label, callback_data=data)
    builder.adjust(1)
    return builder.as_markup()


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(on_model, Command("model"))
    router.callback_query.register(on_model_button, inline(F.data.startswith(BUTTON_PREFIX)))
    return router
