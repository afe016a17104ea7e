"""A fake Telegram Bot API server for tests and benchmarks.

Point aiogram at it with ``AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url))``;
answers have the real JSON shapes, so aiogram builds its real types and raises its real
exceptions. Message text rules live in ``telegram_text``, the methods in ``telegram_methods``.

Standalone (benchmarks)::

    python -m tests.fakes.telegram --port 8081 --per-chat-interval 1 --group-per-minute 20 \
        --global-per-second 30

with a JSON control API on the same port: ``POST /_fake/updates`` (an update or a list),
``POST /_fake/private_text`` (keyword arguments of ``private_text``, or a list of them; also
``group_text``, ``push_message``, ``stop_generation``, ``press_button``), ``GET /_fake/stats``,
``GET /_fake/chat/{chat_id}``, ``GET /_fake/timeline`` (wall-clock moments per update and
chat, see ``telegram_timeline``), ``POST /_fake/take_updates`` (the queued updates, for a
caller that delivers them to webhooks itself), ``POST /_fake/limits``,
``POST /_fake/fail_next``, ``POST /_fake/reset``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

from tests.fakes.telegram_control import ControlApi, parse_args
from tests.fakes.telegram_files import Upload
from tests.fakes.telegram_media import MediaFeeder
from tests.fakes.telegram_methods import ApiError, AsyncHandler, Handler
from tests.fakes.telegram_state import MEMBER_STATUSES, ApiCall, Draft, Limits, SentMessage

__all__ = ["ApiCall", "Draft", "FakeTelegram", "Limits", "SentMessage"]

# Form fields aiogram sends as plain strings; every other value arrives JSON-encoded.
_RAW_STRING_PARAMS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "url",
        "secret_token",
        "action",
        "callback_query_id",
        "inline_message_id",
        "business_connection_id",
        "language_code",
        "ip_address",
        "description",
        "short_description",
        "data",
    }
)


@dataclass
class _Injected:
    error_code: int
    description: str
    retry_after: int | None


def _decode_param(name: str, value: Any) -> Any:
    if isinstance(value, str) and name not in _RAW_STRING_PARAMS:
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class FakeTelegram(MediaFeeder):
    """In-process Bot API server on 127.0.0.1 with observable state and fault injection."""

    def __init__(
        self,
        *,
        token: str = "42:TEST-TOKEN",
        bot_id: int = 42,
        bot_username: str = "glm_test_bot",
        limits: Limits | None = None,
        drafts_supported: bool = True,
        port: int = 0,
        record_calls: bool = True,
        host: str = "127.0.0.1",
    ) -> None:
        self.token = token
        self.bot_id = bot_id
        self.bot_username = bot_username
        self.limits = limits if limits is not None else Limits()
        self.drafts_supported = drafts_supported
        self.record_calls = record_calls
        self.clock: Callable[[], float] = time.monotonic
        self._host = host
        self._port = port
        self._init_methods()
        self._init_files()
        self.calls: list[ApiCall] = []
        self._calls_by_method: dict[str, list[ApiCall]] = {}
        self.method_counts: Counter[str] = Counter()
        self.error_counts: Counter[str] = Counter()
        self.server_errors: list[str] = []  # tracebacks of bugs in the fake itself
        self.webhook_deliveries = 0
        self._rejected_429 = 0
        self._injected: dict[str, deque[_Injected]] = {}
        self._runner: web.AppRunner | None = None
        self._client: ClientSession | None = None
        self._base_url: str | None = None
        sync = {**self._sync_handlers(), **self._file_handlers()}
        async_ = self._async_handlers()
        self._methods: dict[str, tuple[str, Handler | None, AsyncHandler | None]] = {
            name.lower(): (name, sync.get(name), async_.get(name)) for name in [*sync, *async_]
        }

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("FakeTelegram.base_url is only known after start()")
        return self._base_url

    async def start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_bot_request)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file_download)
        ControlApi(self).add_routes(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        self._runner = runner
        port = runner.addresses[0][1]
        self._base_url = f"http://{self._host}:{port}"
        self._updates.closed = False

    async def stop(self) -> None:
        # release long polls first so the server shuts down without waiting for them
        self._updates.closed = True
        self._updates.wake()
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- observing ----------------------------------------------------------------------------

    def calls_of(self, method: str) -> list[ApiCall]:
        """Recorded calls of one method (empty when record_calls is off; see method_counts)."""
        return list(self._calls_by_method.get(method, ()))

    def chat_messages(
        self, chat_id: int, message_thread_id: int | None = None
    ) -> list[SentMessage]:
        """The bot's messages still present in the chat, in send order."""
        chat = self._chats.get(chat_id)
        if chat is None:
            return []
        return [
            sent
            for sent in chat.bot_messages.values()
            if not sent.deleted
            and (message_thread_id is None or sent.message_thread_id == message_thread_id)
        ]

    def message(self, chat_id: int, message_id: int) -> SentMessage | None:
        """One bot message, deleted or not."""
        chat = self._chats.get(chat_id)
        return chat.bot_messages.get(message_id) if chat is not None else None

    def rejected_429(self) -> int:
        return self._rejected_429

    def pending_updates(self) -> int:
        """Updates queued and not yet confirmed by a getUpdates offset."""
        return len(self._updates)

    def take_updates(self) -> list[dict[str, Any]]:
        """Hand every queued update over at once, as getUpdates would, and drop them.

        For a benchmark that delivers updates to webhook replicas itself, the way
        Telegram would post them to a load balancer.
        """
        batch = self._updates.take(len(self._updates) or 1)
        if batch:
            self._updates.confirm(batch[-1]["update_id"] + 1)
        self.timeline.delivered(batch)
        return batch

    def waiting_polls(self) -> int:
        """getUpdates long polls currently parked waiting for an update."""
        return self._updates.waiting

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10.0,
        what: str = "condition",
    ) -> None:
        """Wait until ``predicate()`` is true, else raise AssertionError naming ``what``.

        Re-checked on every API call or pushed update, and at least every 50 ms for
        predicates about state outside the fake.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
            if self._change_event is None:
                self._change_event = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._change_event.wait(), min(remaining, 0.05))

    def stats(self) -> dict[str, Any]:
        return {
            "methods": dict(self.method_counts),
            "errors": dict(self.error_counts),
            "rejected_429": self._rejected_429,
            "messages_sent": self.messages_sent,
            "messages_edited": self.messages_edited,
            "drafts": len(self.drafts),
            "draft_updates": self.draft_updates,
            "chats": len(self._chats),
            "updates": {
                "pushed": self._updates.pushed,
                "pending": len(self._updates),
                "delivered": self._updates.delivered,
                "dropped": self._updates.dropped,
            },
            "webhook_deliveries": self.webhook_deliveries,
            "server_errors": len(self.server_errors),
        }

    def chat_snapshot(self, chat_id: int) -> dict[str, Any]:
        """JSON view of one chat: every bot message (deleted ones flagged) and its drafts."""
        chat = self._chats.get(chat_id)
        if chat is None:
            return {"chat_id": chat_id, "messages": [], "drafts": []}
        return {
            "chat_id": chat_id,
            "chat": chat.as_dict(),
            "messages": [asdict(sent) for sent in chat.bot_messages.values()],
            "drafts": [asdict(draft) for draft in chat.drafts.values()],
        }

    # -- faults and admin state ---------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        *,
        error_code: int = 400,
        description: str = "Bad Request: injected",
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with this error instead of serving them.

        A 429 without retry_after gets ``limits.retry_after`` (and the Telegram wording when
        the description is left at its default), so aiogram raises TelegramRetryAfter.
        """
        if error_code == 429:
            if retry_after is None:
                retry_after = self.limits.retry_after
            if description == "Bad Request: injected":
                description = f"Too Many Requests: retry after {retry_after}"
        queue = self._injected.setdefault(method.lower(), deque())
        queue.extend(_Injected(error_code, description, retry_after) for _ in range(times))

    def delete_message(self, chat_id: int, message_id: int) -> None:
        """Delete a message as a user or admin would; unknown messages raise ValueError."""
        if not self.remove_message(chat_id, message_id):
            raise ValueError(f"no message {message_id} in chat {chat_id} to delete")
        self._notify_change()

    def set_member(
        self, chat_id: int, user_id: int, status: str, *, first_name: str = "User"
    ) -> None:
        """Set what getChatMember answers; unknown users default to "member"."""
        if status not in MEMBER_STATUSES:
            raise ValueError(f"unknown chat member status {status!r}")
        self.chat(chat_id).members[user_id] = status
        if user_id == self.bot_id:
            return
        known = self._users.get(user_id)
        if known is None:
            self._new_user(user_id, first_name)
        elif first_name != "User":
            known["first_name"] = first_name

    async def deliver_webhook(self, update: dict[str, Any]) -> int:
        """POST an update to the URL given to setWebhook; returns the HTTP status."""
        if not self.webhook_url:
            raise RuntimeError("setWebhook was not called with a url")
        self._updates.assign_id(update)
        headers = {}
        if self.webhook_secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = self.webhook_secret
        if self._client is None:
            self._client = ClientSession(timeout=ClientTimeout(total=30))
        async with self._client.post(self.webhook_url, json=update, headers=headers) as resp:
            await resp.read()
            self.webhook_deliveries += 1
            self._notify_change()
            return resp.status

    def reset(self) -> None:
        """Forget all chats, messages, drafts, calls, counters, faults and webhook state.

        Limits, drafts_supported and the update_id counter are kept.
        """
        self._updates.clear()
        self._chats.clear()
        self._users.clear()
        self.drafts.clear()
        self.messages_sent = self.messages_edited = self.draft_updates = 0
        self._flood.reset()
        self.webhook_url, self.webhook_secret = "", None
        self.my_commands.clear()
        self.callback_answers.clear()
        self._open_callbacks.clear()
        self.calls.clear()
        self._calls_by_method.clear()
        self.method_counts.clear()
        self.error_counts.clear()
        self.server_errors.clear()
        self.webhook_deliveries = 0
        self._rejected_429 = 0
        self._injected.clear()
        self._init_files()
        self.timeline.reset()
        self._notify_change()

    # -- HTTP: Bot API ------------------------------------------------------------------------

    async def _read_params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.body_exists:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    raise ApiError(400, "Bad Request: can't parse JSON request body") from None
                if isinstance(body, dict):
                    params.update(body)
            else:
                form = await request.post()
                for key, value in form.items():
                    params[key] = (
                        value
                        if isinstance(value, str)
                        else Upload(value.filename, value.content_type, value.file.read())
                    )
        return {key: _decode_param(key, value) for key, value in params.items()}

    async def _handle_bot_request(self, request: web.Request) -> web.Response:
        at = time.monotonic()
        raw_method = request.match_info["method"]
        entry = self._methods.get(raw_method.lower())
        method = entry[0] if entry is not None else raw_method
        try:
            params = await self._read_params(request)
        except ApiError as exc:
            return self._finish(method, self._arrived(method, {}, at), exc, None)
        # recorded on arrival so a parked long poll is already visible to wait_for()
        call = self._arrived(method, params, at)
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            injected = self._injected.get(method.lower())
            if injected:
                fault = injected.popleft()
                extra = None if fault.retry_after is None else {"retry_after": fault.retry_after}
                raise ApiError(fault.error_code, fault.description, extra)
            if entry is None or (method == "sendMessageDraft" and not self.drafts_supported):
                raise ApiError(404, "Not Found")
            _, sync_handler, async_handler = entry
            if sync_handler is not None:
                result = sync_handler(params)
            else:
                assert async_handler is not None
                self._notify_change()
                result = await async_handler(params)
        except ApiError as exc:
            return self._finish(method, call, exc, None)
        except Exception:
            self.server_errors.append(traceback.format_exc())
            error = ApiError(500, "Internal Server Error: bug in the fake Telegram server")
            return self._finish(method, call, error, None)
        return self._finish(method, call, None, result)

    def _arrived(self, method: str, params: dict[str, Any], at: float) -> ApiCall | None:
        self.method_counts[method] += 1
        self.timeline.arrived(method, params.get("chat_id"))
        if not self.record_calls:
            return None
        call = ApiCall(method, params, at, ok=True, error_code=None, description=None)
        self.calls.append(call)
        self._calls_by_method.setdefault(method, []).append(call)
        return call

    def _finish(
        self, method: str, call: ApiCall | None, error: ApiError | None, result: Any
    ) -> web.Response:
        payload: dict[str, Any]
        if error is None:
            payload = {"ok": True, "result": result}
            status = 200
        else:
            self.error_counts[method] += 1
            if error.error_code == 429:
                self._rejected_429 += 1
            payload = {
                "ok": False,
                "error_code": error.error_code,
                "description": error.description,
            }
            if error.parameters:
                payload["parameters"] = error.parameters
            status = error.error_code
            if call is not None:
                call.ok = False
                call.error_code = error.error_code
                call.description = error.description
        self._notify_change()
        return web.Response(
            body=json.dumps(payload, separators=(",", ":")).encode(),
            status=status,
            content_type="application/json",
        )


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeTelegram(
        token=args.token,
        bot_id=args.bot_id,
        bot_username=args.bot_username,
        limits=Limits(
            per_chat_interval=args.per_chat_interval,
            group_per_minute=args.group_per_minute,
            global_per_second=args.global_per_second,
            retry_after=args.retry_after,
            count_drafts=args.count_drafts,
        ),
        drafts_supported=not args.no_drafts,
        port=args.port,
        record_calls=args.record_calls,
        host=args.host,
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    async with fake:
        print(f"fake Telegram Bot API on {fake.base_url} (token {fake.token})", flush=True)
        await stopping.wait()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(_serve(parse_args(argv)))


if __name__ == "__main__":
    main()
