"""Two real bot processes in webhook mode on one Redis, fed round-robin like replicas
behind a load balancer: every update is answered once (a redelivered one too), in order
per chat, and every conversation's history is complete."""

from __future__ import annotations

import asyncio
import itertools
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from bot.history import RedisHistoryStore
from bot.storage.keys import ConversationKey, Keys
from tests.fakes.glm import FakeGLM, Reply
from tests.fakes.telegram import FakeTelegram
from tests.replica_processes import (
    Replica,
    poll,
    start_replica,
    stop_replicas,
    wait_until_ready,
)
from tests.webhook_updates import private_text_update


class RoundRobin:
    """The load balancer: each update to the next replica, one at a time like Telegram."""

    def __init__(self, session: aiohttp.ClientSession, urls: list[str], secret: str) -> None:
        self._session = session
        self._urls = urls
        self._secret = secret
        self._next = 0
        self._ids = itertools.count(1)
        self.sent: list[tuple[int, int]] = []  # (update_id, replica)

    async def deliver(self, update: dict[str, Any], *, to: int | None = None) -> None:
        if to is None:
            replica = self._next % len(self._urls)
            self._next += 1
        else:
            replica = to
        update.setdefault("update_id", next(self._ids))
        headers = {"X-Telegram-Bot-Api-Secret-Token": self._secret}
        async with self._session.post(self._urls[replica], json=update, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
        self.sent.append((update["update_id"], replica))


@pytest.fixture
async def two_replicas(
    redis_url: str, key_prefix: str, tmp_path: Path, redis_client: aioredis.Redis
) -> AsyncIterator[tuple[FakeTelegram, FakeGLM, list[Replica]]]:
    async with FakeTelegram() as tg, FakeGLM() as glm:
        replicas = [start_replica(n, tg, glm, redis_url, key_prefix, tmp_path) for n in range(2)]
        try:
            await wait_until_ready(tg, replicas)
            yield tg, glm, replicas
        finally:
            await stop_replicas(replicas)


def answer_to(question: str) -> str:
    return f"Re: {question}"


async def test_two_replicas_answer_each_update_once_in_order_per_chat(
    two_replicas: tuple[FakeTelegram, FakeGLM, list[Replica]],
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    tg, glm, replicas = two_replicas
    # long enough that later turns of a chat arrive while earlier ones are answered
    glm.set_responder(
        lambda body: Reply(
            text=answer_to(body["messages"][-1]["content"]),
            first_token_delay=0.15,
            token_interval=0.01,
        )
    )
    alice, bob, carol = 6001, 6002, 6003
    burst = [
        (alice, "a1"),
        (alice, "a2"),
        (bob, "b1"),
        (alice, "a3"),
        (carol, "c1"),
        (bob, "b2"),
        (alice, "a4"),
        (bob, "b3"),
        (alice, "a5"),
        (carol, "c2"),
    ]
    assert tg.webhook_secret is not None
    async with aiohttp.ClientSession() as session:
        balancer = RoundRobin(session, [r.webhook_url for r in replicas], tg.webhook_secret)
        delivered: dict[str, tuple[dict[str, Any], int]] = {}
        for user, question in burst:
            update = private_text_update(tg, user, question)
            await balancer.deliver(update)
            delivered[question] = (update, balancer.sent[-1][1])
            if question == "a3":
                # Telegram redelivers a2 (say its 200 was lost), to the other replica
                first, replica = delivered["a2"]
                await balancer.deliver(dict(first), to=1 - replica)

    expected = {user: [q for u, q in burst if u == user] for user in (alice, bob, carol)}
    try:
        await tg.wait_for(
            lambda: all(
                [m.text for m in tg.chat_messages(user)] == [answer_to(q) for q in questions]
                for user, questions in expected.items()
            ),
            timeout=60,
            what="every update answered, in order",
        )
    except AssertionError:
        # what each chat got and what each replica logged, to tell a lost turn from a
        # reordered one
        for user in expected:
            print(user, [m.text for m in tg.chat_messages(user)])
        for replica in replicas:
            print(replica.log_path.read_text()[-6000:])
        raise

    # each turn was asked once, with every earlier turn of its chat before it, in order
    asked = [r["messages"] for r in glm.requests]
    assert len(asked) == len(burst)
    for questions in expected.values():
        for k, question in enumerate(questions):
            (messages,) = [m for m in asked if m[-1]["content"] == question]
            history = []
            for earlier in questions[:k]:
                history += [
                    {"role": "user", "content": earlier},
                    {"role": "assistant", "content": answer_to(earlier)},
                ]
            assert messages == [*history, {"role": "user", "content": question}], question

    # the stored histories are complete
    store = RedisHistoryStore(redis_client, Keys(key_prefix, tg.bot_id))
    for user, questions in expected.items():

        async def stored(user: int = user, questions: list[str] = questions) -> bool:
            context = await store.load_context(ConversationKey(user), 10**6)
            want = [(role, text) for q in questions for role, text in _turn(q)]
            return [(m.role, m.text) for m in context.messages] == want

        await poll(stored, f"the history of {user}", 10)

    # both replicas answered (each handles the updates it received), one log line each
    def answer_lines() -> list[list[dict[str, Any]]]:
        return [
            [line for line in replica.log_lines() if line.get("logger") == "bot.answers"]
            for replica in replicas
        ]

    async def all_logged() -> bool:
        return sum(len(lines) for lines in answer_lines()) >= len(burst)

    await poll(all_logged, "an answer line per answer", 10)
    answered = answer_lines()
    assert [len(lines) for lines in answered] == [5, 5]
    for lines in answered:
        for line in lines:
            assert line["outcome"] == "completed"
            assert line["chat_id"] in expected
            assert "a1" not in line["message"]  # no content at info level

    # the metrics a benchmark would scrape
    async with aiohttp.ClientSession() as session:
        for replica in replicas:
            async with session.get(f"{replica.metrics_url}/metrics") as resp:
                text = await resp.text()
            assert 'glmbot_answers_total{outcome="completed"} 5.0' in text
            (lag_count,) = re.findall(r"^glmbot_event_loop_lag_seconds_count (\S+)$", text, re.M)
            assert float(lag_count) > 0

    for replica in replicas:
        replica.proc.send_signal(signal.SIGTERM)
    for replica in replicas:
        assert await asyncio.to_thread(replica.proc.wait, 60) == 0
        errors = [line for line in replica.log_lines() if line.get("level") in ("ERROR", "RAW")]
        assert not errors, errors


def _turn(question: str) -> list[tuple[str, str]]:
    return [("user", question), ("assistant", answer_to(question))]


async def test_stop_sent_to_one_replica_stops_the_answer_running_on_the_other(
    two_replicas: tuple[FakeTelegram, FakeGLM, list[Replica]],
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    tg, glm, replicas = two_replicas
    glm.set_responder(
        lambda body: Reply(tokens=[f"w{i} " for i in range(300)], token_interval=0.05)
    )
    alice = 6101
    assert tg.webhook_secret is not None
    async with aiohttp.ClientSession() as session:
        balancer = RoundRobin(session, [r.webhook_url for r in replicas], tg.webhook_secret)
        await balancer.deliver(private_text_update(tg, alice, "tell me a long story"), to=0)
        await tg.wait_for(
            lambda: any(chat == alice and d.texts for (chat, _), d in tg.drafts.items()),
            timeout=30,
            what="the answer streaming from replica 0",
        )
        await balancer.deliver(private_text_update(tg, alice, "/stop"), to=1)
        await tg.wait_for(
            lambda: any("Stopped" in m.text for m in tg.chat_messages(alice)),
            timeout=10,
            what="the answer stopped",
        )

        # what the user sees: the words streamed so far, then the stopped note, and no
        # reply to the /stop itself (the answer says it was stopped)
        (final,) = tg.chat_messages(alice)
        partial, note = final.text.rsplit("\n", 1)
        assert partial.strip().startswith("w0")
        assert len(partial.split()) < 300, "the stream was cut, not completed"
        assert "Stopped" in note
        assert glm.cancelled == 1

        # history: the question and the partial answer, as a local /stop stores them
        store = RedisHistoryStore(redis_client, Keys(key_prefix, tg.bot_id))

        want = [("user", "tell me a long story"), ("assistant", partial.strip())]

        async def stored() -> bool:
            context = await store.load_context(ConversationKey(alice), 10**6)
            return [(m.role, m.text.strip()) for m in context.messages] == want

        await poll(stored, "the stopped turn stored", 10)

        # the answer's own replica logged it as stopped
        async def logged_stopped() -> bool:
            lines = replicas[0].log_lines()
            return any(
                line.get("logger") == "bot.answers" and line.get("outcome") == "stopped"
                for line in lines
            )

        await poll(logged_stopped, "replica 0 to log a stopped answer", 10)

        # once nothing is written anywhere, either replica says so
        await balancer.deliver(private_text_update(tg, alice, "/stop"), to=1)
        await tg.wait_for(
            lambda: tg.chat_messages(alice)[-1].text == "Nothing is being written right now.",
            timeout=10,
            what="nothing to stop",
        )


async def test_two_replicas_share_the_bot_wide_budget_without_a_429(
    two_replicas: tuple[FakeTelegram, FakeGLM, list[Replica]],
) -> None:
    tg, glm, replicas = two_replicas

    def counts(replica: Replica) -> list[str]:
        messages = [str(line.get("message", "")) for line in replica.log_lines()]
        return [m for m in messages if m.startswith("replicas: ")]

    async def both_count_two() -> bool:
        sharing = "replicas: 2 live, sharing the bot-wide Telegram budget"
        return all(counts(replica)[-1:] == [sharing] for replica in replicas)

    await poll(both_count_two, "each replica to count two", 30)
    # Telegram's 30 messages a second for the bot; each replica may send 30 (the default
    # budget) on its own, 15 as one of two
    tg.limits.global_per_second = 30
    # the answers all end about together: one sendMessage each, far beyond 30 a second
    glm.set_responder(lambda body: Reply(text="ok", first_token_delay=1.0))
    chats = range(7001, 7101)
    assert tg.webhook_secret is not None
    async with aiohttp.ClientSession() as session:
        balancer = RoundRobin(session, [r.webhook_url for r in replicas], tg.webhook_secret)
        await asyncio.gather(*(balancer.deliver(private_text_update(tg, c, "hi")) for c in chats))
    await tg.wait_for(
        lambda: all(tg.chat_messages(c) for c in chats), timeout=60, what="every chat answered"
    )
    assert tg.rejected_429() == 0
    assert {replica for _, replica in balancer.sent} == {0, 1}
    sends = sorted(c.at for c in tg.calls if c.method == "sendMessage")
    assert len(sends) == len(chats)
    busiest = max(sum(1 for t in sends if start <= t < start + 1) for start in sends)
    assert busiest > 15, "both replicas were sending at once: the budget was really shared"
