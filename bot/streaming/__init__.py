"""Delivering a growing answer to Telegram (see ``delivery`` for the pieces)."""

from bot.streaming.chain import STOP_CALLBACK
from bot.streaming.delivery import AnswerWriter, StreamDelivery
from bot.streaming.draft import DraftWriter
from bot.streaming.writer import EditWriter

__all__ = ["STOP_CALLBACK", "AnswerWriter", "DraftWriter", "EditWriter", "StreamDelivery"]
