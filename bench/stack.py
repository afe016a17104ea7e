"""One benchmark run's processes: the fake Bot API, the fake GLM and the real bot.

The bot is `python -m bot` configured through the environment only, exactly as deployed;
the fakes are the project's own servers run standalone. All on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.procs import (
    LOOPBACK,
    Service,
    Services,
    cpu_seconds,
    free_port,
    peak_rss_mb,
    python_argv,
)

BOT_TOKEN = "42:BENCH-TOKEN"
BOT_USERNAME = "glm_test_bot"
API_KEY = "bench-key-id.bench-key-secret"
# Distinct ranges, so a chat id says what kind of chat it is.
PRIVATE_BASE = 1_000_000
GROUP_BASE = -1_000_000_000_000
SPEAKER_BASE = 5_000_000


@dataclass(frozen=True)
class GLMProfile:
    """How the fake GLM answers every request."""

    first_token_ms: float = 300.0
    tokens_per_second: float = 40.0
    tokens: int = 200
    # a thinking model: reasoning_tokens pieces over reasoning_ms before the first token
    reasoning_ms: float = 0.0
    reasoning_tokens: int = 20

    def argv(self) -> list[str]:
        out = [
            "--first-token-ms",
            f"{self.first_token_ms:g}",
            "--tokens-per-second",
            f"{self.tokens_per_second:g}",
            "--tokens",
            str(self.tokens),
        ]
        if self.reasoning_ms > 0:
            out += [
                "--reasoning-ms",
                f"{self.reasoning_ms:g}",
                "--reasoning-tokens",
                str(self.reasoning_tokens),
            ]
        return out

    @property
    def answer(self) -> str:
        """What every answer must read once complete, whitespace-normalised: the reasoning
        folded above the answer (the product default; short enough not to be cut), then it."""
        text = " ".join(f"tok{i}" for i in range(self.tokens))
        if self.reasoning_ms > 0:
            text = " ".join([*(f"why{i}" for i in range(self.reasoning_tokens)), text])
        return text


@dataclass(frozen=True)
class Limits:
    """Telegram-like flood limits of the fake Bot API (None: off)."""

    per_chat_interval: float | None = None
    group_per_minute: int | None = None
    global_per_second: int | None = None

    def argv(self) -> list[str]:
        out: list[str] = []
        if self.per_chat_interval is not None:
            out += ["--per-chat-interval", f"{self.per_chat_interval:g}"]
        if self.group_per_minute is not None:
            out += ["--group-per-minute", str(self.group_per_minute)]
        if self.global_per_second is not None:
            out += ["--global-per-second", str(self.global_per_second)]
        return out


TELEGRAM_LIKE = Limits(per_chat_interval=1, group_per_minute=20, global_per_second=30)


@dataclass(frozen=True)
class Chat:
    """One chat of a run, asking one question."""

    chat_id: int

    @property
    def group(self) -> bool:
        return self.chat_id < 0

    @property
    def question(self) -> str:
        # the fake GLM names each request by its last user message: this ends it
        return f"bench question {self.chat_id}"


def private_chats(n: int, start: int = 0) -> list[Chat]:
    return [Chat(PRIVATE_BASE + start + i) for i in range(1, n + 1)]


def group_chats(n: int, start: int = 0) -> list[Chat]:
    return [Chat(GROUP_BASE - start - i) for i in range(1, n + 1)]


@dataclass
class StackConfig:
    glm: GLMProfile = field(default_factory=GLMProfile)
    limits: Limits = field(default_factory=Limits)
    # SECTION__KEY overrides of the bot's settings
    bot_env: dict[str, str] = field(default_factory=dict)
    # "polling": one bot process; "webhook": `replicas` processes sharing Redis, to which
    # the harness posts the updates round-robin (as Telegram would to a load balancer)
    mode: str = "polling"
    replicas: int = 1
    # the bot's command line (another entry point, e.g. under a profiler, for diagnosis)
    bot_argv: list[str] | None = None
    # a JPEG: every question is this photo (a file of its own each) with the question as
    # its caption
    photo: bytes | None = None


WEBHOOK_SECRET = "bench-webhook-secret"
WEBHOOK_PATH = "/telegram/webhook"


class Stack:
    """Fakes and bot(s) of one run; `async with Stack(...)` starts them, leaving stops them."""

    def __init__(self, services: Services, redis_url: str, config: StackConfig) -> None:
        self.services = services
        self.redis_url = redis_url
        self.config = config
        self.key_prefix = f"bench-{uuid.uuid4().hex[:8]}"
        self.tg: Service | None = None
        self.glm: Service | None = None
        self.bots: list[Service] = []
        self.webhook_urls: list[str] = []
        self._http: aiohttp.ClientSession | None = None
        self._next_replica = 0

    async def __aenter__(self) -> Stack:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def bot(self) -> Service:
        """The (first) bot process."""
        return self.bots[0]

    @property
    def tg_url(self) -> str:
        assert self.tg is not None
        return f"http://{LOOPBACK}:{self.tg.port}"

    @property
    def glm_url(self) -> str:
        assert self.glm is not None
        return f"http://{LOOPBACK}:{self.glm.port}"

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self._http is not None
        return self._http

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        tg_args = ["--port", "0", "--token", BOT_TOKEN, "--bot-username", BOT_USERNAME]
        self.tg = await self.services.spawn(
            "fake-telegram",
            python_argv("tests.fakes.telegram", *tg_args, *self.config.limits.argv()),
            announce=True,
        )
        self.glm = await self.services.spawn(
            "fake-glm",
            python_argv("tests.fakes.glm", "--port", "0", *self.config.glm.argv()),
            announce=True,
        )
        env = {
            "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
            "ZHIPU_API_KEY": API_KEY,
            "TELEGRAM_API_BASE": self.tg_url,
            "ZHIPU_BASE_URL": f"{self.glm_url}/api/paas/v4",
            "REDIS_URL": self.redis_url,
            "REDIS__KEY_PREFIX": self.key_prefix,
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "text",
            # /metrics only where the bench looks for it, on loopback
            "METRICS__HOST": LOOPBACK,
            "METRICS__PORT": "0",
            **self.config.bot_env,
        }
        webhook = self.config.mode == "webhook"
        for i in range(self.config.replicas if webhook else 1):
            own = dict(env)
            if i:
                own["METRICS__PORT"] = "0"  # the probe reads the first replica only
            argv = self.config.bot_argv or python_argv("bot", self.config.mode)
            if webhook:
                port = free_port()
                url = f"http://{LOOPBACK}:{port}"
                own.update(
                    WEBHOOK__HOST=LOOPBACK,
                    WEBHOOK__PORT=str(port),
                    WEBHOOK__PUBLIC_URL=url,
                    WEBHOOK__PATH=WEBHOOK_PATH,
                    TELEGRAM_WEBHOOK_SECRET=WEBHOOK_SECRET,
                )
                self.webhook_urls.append(url + WEBHOOK_PATH)
            name = "bot" if not webhook else f"bot-{i + 1}"
            self.bots.append(await self.services.spawn(name, argv, env=own))
        await self._wait_ready()

    async def _wait_ready(self, timeout: float = 30.0) -> None:
        """Polling: the first getUpdates; webhook: every replica registered its webhook."""
        method, count = (
            ("setWebhook", len(self.bots)) if self.config.mode == "webhook" else ("getUpdates", 1)
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for bot in self.bots:
                if not bot.running():
                    raise RuntimeError(f"{bot.name} exited at start:\n{bot.log_tail()}")
            stats = await self.get_tg("/_fake/stats")
            if stats["methods"].get(method, 0) >= count:
                return
            await asyncio.sleep(0.1)  # polling the fake's counters, bounded by the deadline
        raise RuntimeError(f"the bot did not start within {timeout:g}s")

    async def stop(self) -> None:
        try:
            for service in (*self.bots, self.glm, self.tg):
                if service is not None:
                    await service.stop()
        finally:
            if self._http is not None:
                await self._http.close()
                self._http = None

    # -- driving and observing -------------------------------------------------------------

    async def get_tg(self, path: str) -> Any:
        async with self.http.get(self.tg_url + path) as resp:
            resp.raise_for_status()
            return await resp.json()

    async def get_glm(self, path: str) -> Any:
        async with self.http.get(self.glm_url + path) as resp:
            resp.raise_for_status()
            return await resp.json()

    async def post_tg(self, path: str, body: Any) -> Any:
        async with self.http.post(self.tg_url + path, json=body) as resp:
            resp.raise_for_status()
            return await resp.json()

    async def post_glm(self, path: str) -> Any:
        async with self.http.post(self.glm_url + path) as resp:
            resp.raise_for_status()
            return await resp.json()

    async def push(self, chats: list[Chat]) -> None:
        """One question from each chat, privates and groups in one request each."""
        if self.config.photo is not None:
            await self._push_photos(chats)
            return
        private = [{"user_id": c.chat_id, "text": c.question} for c in chats if not c.group]
        mention = "@" + BOT_USERNAME
        group = [
            {
                "chat_id": c.chat_id,
                "user_id": SPEAKER_BASE - c.chat_id % 1_000_000,
                "text": f"{mention} {c.question}",
                "entities": [{"type": "mention", "offset": 0, "length": len(mention)}],
            }
            for c in chats
            if c.group
        ]
        for endpoint, batch in (("private_text", private), ("group_text", group)):
            if batch:
                async with self.http.post(f"{self.tg_url}/_fake/{endpoint}", json=batch) as resp:
                    resp.raise_for_status()
        if self.config.mode == "webhook":
            await self._deliver_webhooks()

    async def _push_photos(self, chats: list[Chat]) -> None:
        """The photo once per chat (stored before any update is pushed), then one photo
        message per chat, captioned with its question, in one request."""
        assert self.config.photo is not None
        url = f"{self.tg_url}/_fake/photo_sizes?copies={len(chats)}"
        async with self.http.post(url, data=self.config.photo) as resp:
            resp.raise_for_status()
            sizes = (await resp.json())["sizes"]
        mention = "@" + BOT_USERNAME
        messages = [
            {
                "chat_id": c.chat_id,
                "user_id": SPEAKER_BASE - c.chat_id % 1_000_000 if c.group else c.chat_id,
                "media": {"photo": photo},
                "caption": f"{mention} {c.question}" if c.group else c.question,
            }
            for c, photo in zip(chats, sizes, strict=True)
        ]
        await self.post_tg("/_fake/media_message", messages)
        if self.config.mode == "webhook":
            await self._deliver_webhooks()

    async def _deliver_webhooks(self) -> None:
        """Post the queued updates to the replicas in turn, all at once, like Telegram."""
        updates = (await self.post_tg("/_fake/take_updates", None))["updates"]
        headers = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}

        async def post(update: dict[str, Any], url: str) -> None:
            async with self.http.post(url, json=update, headers=headers) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"webhook {url} answered {resp.status}")

        posts = []
        for update in updates:
            url = self.webhook_urls[self._next_replica % len(self.webhook_urls)]
            self._next_replica += 1
            posts.append(post(update, url))
        await asyncio.gather(*posts)

    async def wait_answers(self, chats: list[Chat], timeout: float, quiet: float = 10.0) -> bool:
        """Until every chat shows a complete final answer (True), or the bot is done
        without that (nothing happened for ``quiet`` s after GLM finished) or time ran out."""
        want = len(self.config.glm.answer)
        ids = {str(c.chat_id) for c in chats}
        deadline = time.monotonic() + timeout
        last_calls, quiet_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            if not all(bot.running() for bot in self.bots):
                return False
            timeline = await self.get_tg("/_fake/timeline?texts=0")
            entries = [timeline["chats"].get(i) for i in ids]
            if all(e and e["text_len"] >= want and not e["markup"] for e in entries):
                return True
            calls = sum(e["calls"] for e in entries if e)
            if calls != last_calls:
                last_calls, quiet_since = calls, time.monotonic()
            elif time.monotonic() - quiet_since > quiet:
                glm = await self.get_glm("/_fake/stats")
                if glm["in_flight"] == 0 and glm["requests"] >= len(chats):
                    return False
            await asyncio.sleep(0.2)  # polling the fake's state, bounded by the deadline
        return False

    def bot_cpu(self) -> float:
        """CPU seconds of every bot process together."""
        return sum(cpu_seconds(bot.pid) for bot in self.bots)

    def fakes_cpu(self) -> dict[str, float]:
        return {s.name: cpu_seconds(s.pid) for s in (self.tg, self.glm) if s is not None}

    def bot_peak_rss_mb(self) -> float | None:
        """The largest peak RSS of the bot processes."""
        peaks = [p for p in (peak_rss_mb(bot.pid) for bot in self.bots) if p is not None]
        return max(peaks) if peaks else None
