"""The fake GLM server itself: wire format, validation, scripting and its control API."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes.glm import FakeGLM, Reply, search_results, split_pieces, validate_body

USER = [{"role": "user", "content": "hi"}]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def fake() -> AsyncIterator[FakeGLM]:
    async with FakeGLM() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def sse_payloads(raw: str) -> list[str]:
    assert raw.endswith("\n\n")
    events = raw[:-2].split("\n\n")
    assert all(event.startswith("data: ") for event in events)
    return [event[len("data: ") :] for event in events]


async def post(http: aiohttp.ClientSession, fake: FakeGLM, body: dict[str, Any]) -> tuple[int, str]:
    async with http.post(f"{fake.api_base}/chat/completions", json=body) as response:
        return response.status, await response.text()


@given(st.text())
def test_pieces_concatenate_to_the_text(text: str) -> None:
    pieces = split_pieces(text)
    assert "".join(pieces) == text
    assert all(pieces)


async def test_stream_is_zhipu_shaped_sse(fake: FakeGLM, http: aiohttp.ClientSession) -> None:
    fake.script(Reply(tokens=["你好", "，", "world"], usage={"prompt_tokens": 3}))
    status, raw = await post(http, fake, {"model": "glm-4", "messages": USER, "stream": True})
    assert status == 200
    payloads = sse_payloads(raw)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(payload) for payload in payloads[:-1]]
    assert {chunk["id"] for chunk in chunks} == {chunks[0]["id"]}
    assert all(chunk["model"] == "glm-4" and isinstance(chunk["created"], int) for chunk in chunks)
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks]
    assert all(delta["role"] == "assistant" for delta in deltas)
    assert "".join(delta["content"] for delta in deltas) == "你好，world"
    assert all("finish_reason" not in chunk["choices"][0] for chunk in chunks[:-1])
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == {"prompt_tokens": 3}
    assert "usage" not in chunks[0]
    assert fake.completed == 1


async def test_non_stream_completion(fake: FakeGLM, http: aiohttp.ClientSession) -> None:
    fake.script(Reply(text="whole answer", finish_reason="length"))
    status, raw = await post(http, fake, {"model": "glm-4", "messages": USER})
    body = json.loads(raw)
    assert status == 200
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "whole answer"}
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 2


async def test_http_error_reply(fake: FakeGLM, http: aiohttp.ClientSession) -> None:
    fake.script(Reply(status=429, code="1113", message="余额不足"))
    status, raw = await post(http, fake, {"model": "glm-4", "messages": USER, "stream": True})
    assert status == 429
    assert json.loads(raw) == {"error": {"code": "1113", "message": "余额不足"}}


async def test_error_event_inside_the_stream(fake: FakeGLM, http: aiohttp.ClientSession) -> None:
    fake.script(Reply(tokens=["a", "b", "c"], stream_error_after=1, code="1301", message="bad"))
    _, raw = await post(http, fake, {"model": "glm-4", "messages": USER, "stream": True})
    payloads = sse_payloads(raw)
    assert len(payloads) == 2
    assert json.loads(payloads[1]) == {"error": {"code": "1301", "message": "bad"}}


async def test_scripted_replies_then_responder_then_default(
    fake: FakeGLM, http: aiohttp.ClientSession
) -> None:
    fake.default = Reply(text="default")
    fake.script(Reply(text="first"), Reply(text="second"))
    body = {"model": "glm-4", "messages": USER}

    async def answer() -> str:
        _, raw = await post(http, fake, body)
        return str(json.loads(raw)["choices"][0]["message"]["content"])

    assert [await answer(), await answer(), await answer()] == ["first", "second", "default"]
    fake.set_responder(lambda request: Reply(text=f"echo {request['messages'][-1]['content']}"))
    assert await answer() == "echo hi"
    fake.set_responder(None)
    assert await answer() == "default"
    assert len(fake.requests) == 5


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"model": "glm-4", "messages": []}, "messages must be a non-empty list"),
        ({"model": "", "messages": USER}, "model missing or empty"),
        (
            {"model": "glm-4", "messages": [{"role": "system", "content": "x"}]},
            "messages hold only a system message",
        ),
        (
            {"model": "glm-4", "messages": [*USER, {"role": "system", "content": "x"}]},
            "messages[1] is a system message after index 0",
        ),
        ({"model": "glm-4", "messages": [{"role": "bot", "content": "x"}]}, "messages[0].role"),
        ({"model": "glm-4", "messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
    ],
)
async def test_invalid_messages_get_zhipus_1214(
    fake: FakeGLM, http: aiohttp.ClientSession, body: dict[str, Any], problem: str
) -> None:
    status, raw = await post(http, fake, body)
    assert status == 400
    assert json.loads(raw)["error"]["code"] == "1214"
    assert len(fake.violations) == 1
    assert fake.violations[0].startswith(problem)


def test_valid_bodies_pass_validation() -> None:
    vision = [{"type": "text", "text": "what is it?"}]
    assert validate_body({"model": "glm-4", "messages": USER}) is None
    assert (
        validate_body({"model": "glm-4v", "messages": [{"role": "user", "content": vision}]})
        is None
    )
    many = [
        {"role": "system", "content": "persona"},
        {"role": "user", "content": "a"},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": "c"},
        {"role": "user", "content": "d"},
    ]
    assert validate_body({"model": "glm-4", "messages": many}) is None


async def test_validation_can_be_off(http: aiohttp.ClientSession) -> None:
    async with FakeGLM(validate=False) as fake:
        status, _ = await post(http, fake, {"model": "glm-4", "messages": []})
        assert status == 200
        assert fake.violations == []


async def test_client_leaving_mid_stream_is_counted(
    fake: FakeGLM, http: aiohttp.ClientSession
) -> None:
    fake.script(Reply(tokens=["x"] * 1000, token_interval=0.01))
    body = {"model": "glm-4", "messages": USER, "stream": True}
    async with http.post(f"{fake.api_base}/chat/completions", json=body) as response:
        await response.content.readline()
        response.close()
    await fake.wait_cancelled(1, timeout=5)
    await fake.wait_for(lambda: fake.in_flight == 0, 5, "the handler to end")
    assert fake.completed == 0


async def test_stats_and_reset(fake: FakeGLM, http: aiohttp.ClientSession) -> None:
    await post(http, fake, {"model": "glm-4", "messages": USER, "stream": True})
    await post(http, fake, {"model": "glm-4", "messages": []})
    async with http.get(f"{fake.base_url}/_fake/stats") as response:
        stats = await response.json()
    assert stats == {
        "requests": 2,
        "cancelled": 0,
        "completed": 1,
        "violations": 1,
        "in_flight": 0,
        "max_in_flight": 1,
    }
    async with http.post(f"{fake.base_url}/_fake/reset") as response:
        assert response.status == 200
    assert (fake.requests, fake.violations, fake.completed) == ([], [], 0)


async def test_wait_for_times_out_with_a_message(fake: FakeGLM) -> None:
    with pytest.raises(AssertionError, match="the impossible"):
        await fake.wait_for(lambda: False, 0.05, "the impossible")


async def test_runs_standalone(http: aiohttp.ClientSession) -> None:
    command = [sys.executable, "-m", "tests.fakes.glm", "--port", "0", "--first-token-ms", "0"]
    command += ["--tokens", "20", "--tokens-per-second", "0"]
    process = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(20):
            banner = (await process.stdout.readline()).decode()
        base_url = banner.split()[4]
        body = {"model": "glm-4", "messages": USER, "stream": True}
        async with http.post(f"{base_url}/api/paas/v4/chat/completions", json=body) as response:
            payloads = sse_payloads(await response.text())
        assert len(payloads) == 20 + 2
        async with http.get(f"{base_url}/_fake/stats") as response:
            assert (await response.json())["completed"] == 1
    finally:
        process.terminate()
        await process.wait()


# thinking, web search and the new ways to end (issues 12 and 14)

STREAM = {"model": "glm-4.7", "messages": USER, "stream": True}


def chunks_of(payloads: list[str]) -> list[dict[str, Any]]:
    return [json.loads(payload) for payload in payloads if payload != "[DONE]"]


async def test_reasoning_comes_before_the_text_over_the_given_time(
    fake: FakeGLM, http: aiohttp.ClientSession
) -> None:
    fake.script(
        Reply(reasoning_pieces=["Let ", "me ", "think."], reasoning_seconds=0.6, text="Hi.")
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    _, raw = await post(http, fake, STREAM)
    assert loop.time() - started >= 0.55
    chunks = chunks_of(sse_payloads(raw))
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks]
    assert [delta.get("reasoning_content") for delta in deltas[:3]] == ["Let ", "me ", "think."]
    assert all("content" not in delta for delta in deltas[:3])
    assert "".join(delta.get("content", "") for delta in deltas[3:]) == "Hi."
    usage = chunks[-1]["usage"]
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 3}
    assert usage["completion_tokens"] == 3 + 1
    timing = fake.timings[0]
    assert timing["first_reasoning_at"] < timing["first_token_at"] - 0.5


@pytest.mark.parametrize("at", ["first", "last"])
async def test_web_search_results_on_a_chunk_of_their_own(
    fake: FakeGLM, http: aiohttp.ClientSession, at: str
) -> None:
    fake.script(Reply(text="See [ref_1].", web_search=search_results(1), web_search_at=at))
    _, raw = await post(http, fake, STREAM)
    payloads = sse_payloads(raw)
    assert payloads[-1] == "[DONE]"
    chunks = chunks_of(payloads)
    found = [chunk for chunk in chunks if "web_search" in chunk]
    assert len(found) == 1
    assert "choices" not in found[0]
    assert found[0]["web_search"][0]["refer"] == "ref_1"
    assert chunks.index(found[0]) == (0 if at == "first" else len(chunks) - 1)


@pytest.mark.parametrize("pause", [0.0, 0.3])
async def test_a_body_can_end_without_its_end_marker(
    fake: FakeGLM, http: aiohttp.ClientSession, pause: float
) -> None:
    fake.script(Reply(tokens=["a", "b", "c"], end_early_after=2, end_pause=pause))
    _, raw = await post(http, fake, STREAM)
    chunks = chunks_of(sse_payloads(raw))
    assert "[DONE]" not in raw
    assert [chunk["choices"][0]["delta"]["content"] for chunk in chunks] == ["a", "b"]
    assert all("finish_reason" not in chunk["choices"][0] for chunk in chunks)
    assert fake.completed == 0


async def test_a_finish_without_done_and_new_finish_reasons(
    fake: FakeGLM, http: aiohttp.ClientSession
) -> None:
    fake.script(Reply(text="x", finish_reason="model_context_window_exceeded", send_done=False))
    _, raw = await post(http, fake, STREAM)
    payloads = sse_payloads(raw)
    assert "[DONE]" not in payloads
    assert json.loads(payloads[-1])["choices"][0]["finish_reason"] == (
        "model_context_window_exceeded"
    )


async def test_a_stall_after_the_headers(fake: FakeGLM, http: aiohttp.ClientSession) -> None:
    fake.script(Reply(stall_after=0))
    async with http.post(f"{fake.api_base}/chat/completions", json=STREAM) as response:
        assert response.status == 200
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await response.content.readany()
        response.close()
    await fake.wait_cancelled(1)


async def test_headers_can_be_held_back(fake: FakeGLM, http: aiohttp.ClientSession) -> None:
    fake.script(Reply(headers_delay=30))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await http.post(f"{fake.api_base}/chat/completions", json=STREAM)
    await fake.wait_cancelled(1)


async def test_requests_are_kept_with_thinking_tools_and_image_parts(
    fake: FakeGLM, http: aiohttp.ClientSession
) -> None:
    parts = [
        {"type": "text", "text": "what is it?"},
        {"type": "image_url", "image_url": {"url": "iVBORw0KGgo="}},
    ]
    body = {
        "model": "glm-4.6v",
        "messages": [{"role": "user", "content": parts}],
        "stream": True,
        "thinking": {"type": "enabled", "clear_thinking": False},
        "reasoning_effort": "high",
        "tools": [{"type": "web_search", "web_search": {"enable": True}}],
    }
    status, _ = await post(http, fake, body)
    assert status == 200
    assert fake.requests == [body]
    assert fake.timings[0]["user"] == "what is it?"


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"thinking": {"type": "on"}}, "thinking is"),
        ({"thinking": {"type": "enabled", "clear_thinking": "no"}}, "thinking is"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort is"),
        ({"tools": [{"type": "browser"}]}, "tools[0] is not a known tool"),
        ({"tools": [{"type": "web_search"}]}, "tools[0] is not a known tool"),
        ({"messages": [{"role": "user", "content": []}]}, "messages[0].content is an empty"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages[0].content[0] is not a text or image_url part",
        ),
    ],
)
def test_invalid_options_and_parts_are_found(extra: dict[str, Any], problem: str) -> None:
    found = validate_body({"model": "glm-4.7", "messages": USER, **extra})
    assert found is not None
    assert found.startswith(problem)


def test_null_thinking_as_the_sdk_sends_it_is_valid() -> None:
    assert validate_body({"model": "glm-4.7", "messages": USER, "thinking": None}) is None
