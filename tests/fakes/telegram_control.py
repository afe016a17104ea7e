"""Control API of the standalone fake Telegram (JSON under /_fake/) and its command line."""

from __future__ import annotations

import argparse
from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.fakes.telegram_state import Limits

if TYPE_CHECKING:
    from tests.fakes.telegram import FakeTelegram

_HELPERS = (
    "private_text",
    "group_text",
    "push_message",
    "media_message",
    "stop_generation",
    "press_button",
)


class ControlApi:
    """Handlers for ``/_fake/...``: push updates, read stats and chats, reset, change limits."""

    def __init__(self, fake: FakeTelegram) -> None:
        self.fake = fake

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/_fake/updates", self._updates)
        app.router.add_get("/_fake/stats", self._stats)
        app.router.add_get("/_fake/chat/{chat_id}", self._chat)
        app.router.add_get("/_fake/timeline", self._timeline)
        app.router.add_post("/_fake/take_updates", self._take_updates)
        app.router.add_post("/_fake/reset", self._reset)
        app.router.add_post("/_fake/limits", self._limits)
        app.router.add_post("/_fake/fail_next", self._fail_next)
        app.router.add_post("/_fake/photo_sizes", self._photo_sizes)
        app.router.add_post("/_fake/{helper}", self._helper)

    @staticmethod
    def _json(data: Any, status: int = 200) -> web.Response:
        return web.json_response(data, status=status)

    async def _updates(self, request: web.Request) -> web.Response:
        body = await request.json()
        updates = body if isinstance(body, list) else [body]
        return self._json({"update_ids": [self.fake.push_update(update) for update in updates]})

    async def _helper(self, request: web.Request) -> web.Response:
        name = request.match_info["helper"]
        if name not in _HELPERS:
            return self._json({"error": f"unknown control endpoint {name!r}"}, 404)
        body = await request.json()
        helper = getattr(self.fake, name)
        try:
            ids = [helper(**kwargs) for kwargs in (body if isinstance(body, list) else [body])]
        except (TypeError, ValueError) as exc:
            return self._json({"error": str(exc)}, 400)
        return self._json({"update_ids": ids})

    async def _photo_sizes(self, request: web.Request) -> web.Response:
        """The body (an image) stored as ``copies`` photos of their own, ``width`` x
        ``height``; their PhotoSize lists, for ``media_message`` (benchmarks)."""
        data = await request.read()
        try:
            copies = int(request.query.get("copies", "1"))
            width = int(request.query.get("width", "1280"))
            height = int(request.query.get("height", "960"))
        except ValueError as exc:
            return self._json({"error": str(exc)}, 400)
        sizes = [self.fake.photo_sizes(data, width=width, height=height) for _ in range(copies)]
        return self._json({"sizes": sizes})

    async def _stats(self, request: web.Request) -> web.Response:
        return self._json(self.fake.stats())

    async def _chat(self, request: web.Request) -> web.Response:
        try:
            chat_id = int(request.match_info["chat_id"])
        except ValueError:
            return self._json({"error": "chat_id must be an integer"}, 400)
        return self._json(self.fake.chat_snapshot(chat_id))

    async def _timeline(self, request: web.Request) -> web.Response:
        """Wall-clock moments per update and per chat, with each chat's visible text.

        ``?texts=0`` leaves the texts out (their lengths stay), for cheap polling.
        """
        timeline = self.fake.timeline
        with_texts = request.query.get("texts", "1") != "0"
        chat_ids = set(timeline.chats)
        chat_ids.update(u["chat_id"] for u in timeline.updates.values() if u["chat_id"])
        chats: dict[str, Any] = {}
        for chat_id in chat_ids:
            times = timeline.chats.get(chat_id)
            live = self.fake.chat_messages(chat_id)
            text = "\n".join(m.text for m in live)
            entry = times.as_dict() if times is not None else {"calls": 0}
            entry.update(
                messages=len(live),
                text_len=len(text),
                markup=any(m.reply_markup for m in live),
            )
            if with_texts:
                entry["text"] = text
            chats[str(chat_id)] = entry
        updates = [{"update_id": k, **v} for k, v in timeline.updates.items()]
        return self._json({"updates": updates, "chats": chats, "stats": self.fake.stats()})

    async def _take_updates(self, request: web.Request) -> web.Response:
        return self._json({"updates": self.fake.take_updates()})

    async def _reset(self, request: web.Request) -> web.Response:
        self.fake.reset()
        return self._json({"ok": True})

    async def _limits(self, request: web.Request) -> web.Response:
        body = await request.json() if request.body_exists else {}
        known = {f.name for f in fields(Limits)}
        unknown = set(body) - known
        if unknown:
            return self._json({"error": f"unknown limits {sorted(unknown)}"}, 400)
        for key, value in body.items():
            setattr(self.fake.limits, key, value)
        return self._json(asdict(self.fake.limits))

    async def _fail_next(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            self.fake.fail_next(**body)
        except TypeError as exc:
            return self._json({"error": str(exc)}, 400)
        return self._json({"ok": True})


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Fake Telegram Bot API server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default="42:TEST-TOKEN")
    parser.add_argument("--bot-id", type=int, default=42)
    parser.add_argument("--bot-username", default="glm_test_bot")
    parser.add_argument("--per-chat-interval", type=float)
    parser.add_argument("--group-per-minute", type=int)
    parser.add_argument("--global-per-second", type=int)
    parser.add_argument("--retry-after", type=int, default=1)
    parser.add_argument("--count-drafts", action="store_true")
    parser.add_argument("--no-drafts", action="store_true", help="answer sendMessageDraft 404")
    parser.add_argument(
        "--record-calls", action="store_true", help="keep every call in memory (off: counters only)"
    )
    return parser.parse_args(argv)
