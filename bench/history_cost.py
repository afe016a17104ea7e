"""Context read and trim cost against conversations of 10 to 100,000 stored messages.

In-process, against the benchmark's private Redis: `RedisHistoryStore.load_context`
(one script call that pages from the newest end) then `bot.prompt.build.build_prompt`, timed
separately, with the budget the answerer uses for glm-4 and a small one.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from bench.analysis import percentile
from bot.history import create_redis_client
from bot.history.entries import encode_entry
from bot.history.redis_store import RedisHistoryStore
from bot.messages import Message
from bot.prompt.build import build_prompt
from bot.storage.keys import ConversationKey, Keys

# context_tokens - max_tokens of the default [llm] settings (glm-4: 128,000 - 4,096)
GLM4_BUDGET = 128_000 - 4_096
SMALL_BUDGET = 8_000
_SENTENCE = "The quick brown fox jumps over the lazy dog while the bench keeps counting. "


def _message(i: int) -> Message:
    # about 200 tokens each, so only the newest ~600 fit the glm-4 budget
    content = f"message {i}: " + _SENTENCE * 12
    return Message.of_text("user" if i % 2 == 0 else "assistant", content)


async def measure(
    redis_url: str, sizes: list[int], *, iterations: int = 50
) -> list[dict[str, Any]]:
    redis = create_redis_client(redis_url, max_connections=4, pool_timeout=5)
    keys = Keys(f"bench-history-{uuid.uuid4().hex[:8]}", 42)
    store = RedisHistoryStore(redis, keys, max_messages=max(sizes) + 10)
    rows = []
    try:
        for size in sizes:
            key = ConversationKey(size)
            await _fill(redis, keys.messages(key), size)
            for budget in (GLM4_BUDGET, SMALL_BUDGET):
                rows.append(await _time(store, key, size, budget, iterations))
            await redis.delete(keys.messages(key))
    finally:
        await redis.aclose()
    return rows


async def _fill(redis: Any, list_key: str, size: int) -> None:
    await redis.delete(list_key)
    for start in range(0, size, 5_000):
        entries = [encode_entry(_message(i)) for i in range(start, min(size, start + 5_000))]
        await redis.rpush(list_key, *entries)


async def _time(
    store: RedisHistoryStore, key: ConversationKey, size: int, budget: int, iterations: int
) -> dict[str, Any]:
    user = Message.of_text("user", "the new question")
    loads: list[float] = []
    trims: list[float] = []
    kept = read = 0
    await store.load_context(key, budget)  # warm-up: script load, connection
    for _ in range(iterations):
        t0 = time.perf_counter()
        context = await store.load_context(key, budget - user.tokens)
        t1 = time.perf_counter()
        prompt = build_prompt(
            persona=None,
            persona_tokens=0,
            history=context.messages,
            user=user,
            budget_tokens=budget,
        )
        t2 = time.perf_counter()
        loads.append(t1 - t0)
        trims.append(t2 - t1)
        read, kept = len(context.messages), len(prompt.messages) - 1

    def ms(values: list[float], q: float) -> float | None:
        value = percentile(values, q)
        return None if value is None else round(value * 1000, 2)

    return {
        "stored": size,
        "budget_tokens": budget,
        "messages_read": read,
        "messages_kept": kept,
        "load_ms_p50": ms(loads, 50),
        "load_ms_p99": ms(loads, 99),
        "trim_ms_p50": ms(trims, 50),
        "trim_ms_p99": ms(trims, 99),
        "iterations": iterations,
    }
