"""GLMClient: the real zhipuai SDK against the fake GLM server (no monkeypatching)."""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import threading
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bot.llm import (
    ErrorKind,
    GLMClient,
    GLMError,
    GLMOptions,
    StreamEnd,
    StreamEvent,
    TextDelta,
    Usage,
)
from tests.fakes.glm import FakeGLM, Reply
from tests.llm_rig import API_KEY, ClientFactory, client_factory

OPTIONS = GLMOptions(model="glm-4", max_tokens=256, temperature=0.7, user_id="tg-424242")
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "my secret question about llamas"},
]


@pytest.fixture
async def fake() -> AsyncIterator[FakeGLM]:
    async with FakeGLM() as server:
        yield server


@pytest.fixture
async def make_client(fake: FakeGLM) -> AsyncIterator[ClientFactory]:
    async with client_factory(fake) as make:
        yield make


@pytest.fixture
def client(make_client: ClientFactory) -> GLMClient:
    return make_client()


async def collect(
    client: GLMClient,
    messages: list[dict[str, str]] | None = None,
    options: GLMOptions = OPTIONS,
) -> list[StreamEvent]:
    return [event async for event in client.stream(messages or MESSAGES, options)]


def text_of(events: list[StreamEvent]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


async def consume_until_error(client: GLMClient, shown: list[str]) -> GLMError:
    """Consume a stream that must fail, keeping the text shown before the failure."""

    async def consume() -> None:
        async for event in client.stream(MESSAGES, OPTIONS):
            if isinstance(event, TextDelta):
                shown.append(event.text)

    with pytest.raises(GLMError) as caught:
        await consume()
    return caught.value


async def wait_idle(client: GLMClient, fake: FakeGLM) -> None:
    await fake.wait_for(lambda: client.in_flight == 0, 5.0, "the slot to be freed")


# streaming


async def test_text_arrives_in_order_then_one_stream_end(fake: FakeGLM, client: GLMClient) -> None:
    tokens = ["Hel", "lo", ", ", "wor", "ld", "! ", "你好", "，世界"]
    usage = {"prompt_tokens": 11, "completion_tokens": 8, "total_tokens": 19}
    fake.script(Reply(tokens=tokens, token_interval=0.005, usage=usage))

    events = await collect(client)

    assert all(isinstance(event, TextDelta) and event.text for event in events[:-1])
    assert text_of(events) == "".join(tokens)
    assert events[-1] == StreamEnd(finish_reason="stop", usage=Usage(11, 8, 19))
    assert len(fake.requests) == 1
    await wait_idle(client, fake)


@pytest.mark.parametrize(
    "text",
    ["Hello!", "Line one.\n\nLine two:\n- item", "混合 text 和中文，还有 emoji 🎉.", "  spaced  "],
)
async def test_any_text_survives_the_wire(fake: FakeGLM, client: GLMClient, text: str) -> None:
    fake.script(Reply(text=text))
    assert text_of(await collect(client)) == text


async def test_request_carries_key_messages_and_options(fake: FakeGLM, client: GLMClient) -> None:
    messages = [dict(message) for message in MESSAGES]
    await collect(client, messages)

    assert fake.headers[0]["Authorization"] == f"Bearer {API_KEY}"
    body = fake.requests[0]
    assert body["model"] == "glm-4"
    assert body["messages"] == MESSAGES
    assert body["stream"] is True
    assert body["max_tokens"] == 256
    assert body["temperature"] == pytest.approx(0.7)
    assert body["user_id"] == "tg-424242"
    assert messages == MESSAGES
    assert fake.violations == []


@pytest.mark.parametrize("user_id", [None, "short", "x" * 129])
async def test_user_id_is_sent_only_when_zhipu_accepts_it(
    fake: FakeGLM, client: GLMClient, user_id: str | None
) -> None:
    options = GLMOptions(model="glm-4", max_tokens=16, temperature=0.5, user_id=user_id)
    await collect(client, options=options)
    assert "user_id" not in fake.requests[0]


@pytest.mark.parametrize("reason", ["length", "sensitive", "tool_calls"])
async def test_finish_reason_is_reported_not_raised(
    fake: FakeGLM, client: GLMClient, reason: str
) -> None:
    fake.script(Reply(text="partial answer", finish_reason=reason))
    events = await collect(client)
    assert text_of(events) == "partial answer"
    assert isinstance(events[-1], StreamEnd)
    assert events[-1].finish_reason == reason


async def test_sensitive_without_text_is_an_end_not_a_retry(
    fake: FakeGLM, client: GLMClient
) -> None:
    fake.script(Reply(tokens=[], finish_reason="sensitive"))
    events = await collect(client)
    assert len(events) == 1
    assert isinstance(events[0], StreamEnd)
    assert events[0].finish_reason == "sensitive"
    assert len(fake.requests) == 1


async def test_network_error_finish_before_text_is_retried(
    fake: FakeGLM, client: GLMClient
) -> None:
    fake.script(Reply(tokens=[], finish_reason="network_error"), Reply(text="second try"))
    events = await collect(client)
    assert text_of(events) == "second try"
    assert len(fake.requests) == 2


async def test_network_error_finish_that_persists_raises_network(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    client = make_client(retry_attempts=2)
    fake.script(*[Reply(tokens=[], finish_reason="network_error")] * 2)
    error = await consume_until_error(client, [])
    assert error.kind is ErrorKind.NETWORK
    assert len(fake.requests) == 2


async def test_network_error_finish_after_text_is_interrupted(
    fake: FakeGLM, client: GLMClient
) -> None:
    fake.script(Reply(text="half an answer", finish_reason="network_error"))
    shown: list[str] = []
    error = await consume_until_error(client, shown)
    assert error.kind is ErrorKind.NETWORK
    assert "".join(shown) == "half an answer"
    assert len(fake.requests) == 1


async def test_slow_consumer_gets_merged_text_and_no_stall(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    client = make_client(stall_timeout=0.3)
    tokens = [f"t{i} " for i in range(20)]
    fake.script(Reply(tokens=tokens, token_interval=0.02))
    deltas: list[str] = []
    async for event in client.stream(MESSAGES, OPTIONS):
        if isinstance(event, TextDelta):
            deltas.append(event.text)
            if len(deltas) == 1:
                # a consumer busy elsewhere (e.g. editing a Telegram message) for longer
                # than stall_timeout while the server keeps streaming
                await asyncio.sleep(0.6)
    assert "".join(deltas) == "".join(tokens)
    assert len(deltas) < len(tokens)


# cancellation


async def test_break_out_of_async_for_closes_the_connection(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    client = make_client(max_concurrent=1)
    fake.script(Reply(tokens=["tok "] * 100, token_interval=0.05))
    async for event in client.stream(MESSAGES, OPTIONS):
        assert isinstance(event, TextDelta)
        break
    started = time.monotonic()
    await fake.wait_cancelled(1, timeout=2.0)
    assert time.monotonic() - started < 1.5
    await wait_idle(client, fake)
    # the only slot is free again
    assert text_of(await collect(client)) == "Hello!"


async def test_aclose_of_the_iterator_closes_the_connection(
    fake: FakeGLM, client: GLMClient
) -> None:
    fake.script(Reply(tokens=["tok "] * 100, token_interval=0.05))
    async with contextlib.aclosing(client.stream(MESSAGES, OPTIONS)) as events:
        async for _event in events:
            break
    await fake.wait_cancelled(1, timeout=2.0)
    await wait_idle(client, fake)


async def test_cancelling_the_task_closes_the_connection_and_frees_the_worker(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    client = make_client(max_concurrent=1)
    fake.script(Reply(tokens=["tok "] * 100, token_interval=0.05))
    first_text = asyncio.Event()

    async def consume() -> None:
        async for _event in client.stream(MESSAGES, OPTIONS):
            first_text.set()

    task = asyncio.create_task(consume())
    async with asyncio.timeout(5):
        await first_text.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await fake.wait_cancelled(1, timeout=2.0)
    await wait_idle(client, fake)
    assert text_of(await collect(client)) == "Hello!"


async def test_cancelling_while_waiting_for_the_first_token(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    client = make_client(max_concurrent=1)
    fake.script(Reply(text="late", first_token_delay=30))
    task = asyncio.create_task(collect(client))
    await fake.wait_for(lambda: fake.in_flight == 1, 5.0, "the request to arrive")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await fake.wait_cancelled(1, timeout=2.0)
    await wait_idle(client, fake)


async def test_closing_the_client_fails_running_streams(fake: FakeGLM, client: GLMClient) -> None:
    fake.script(Reply(text="a b c", stall_after=1))
    shown: list[str] = []
    task = asyncio.create_task(consume_until_error(client, shown))
    await fake.wait_for(lambda: bool(shown), 5.0, "the first text")
    await client.aclose()
    error = await task
    assert shown == ["a"]
    assert error.kind is ErrorKind.UNKNOWN
    await fake.wait_cancelled(1, timeout=2.0)
    with pytest.raises(RuntimeError):
        await collect(client)


# stalls and timeouts


async def test_stall_mid_stream_raises_stalled_and_drops_the_connection(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    client = make_client(stall_timeout=0.3)
    fake.script(Reply(text="one two three four", stall_after=2))
    shown: list[str] = []
    started = time.monotonic()
    error = await consume_until_error(client, shown)
    assert error.kind is ErrorKind.STALLED
    assert not error.retryable
    assert "".join(shown) == "one two"
    assert 0.25 < time.monotonic() - started < 3
    assert len(fake.requests) == 1
    await fake.wait_cancelled(1, timeout=2.0)
    await wait_idle(client, fake)


async def test_first_chunk_is_bounded_by_the_read_timeout(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    client = make_client(read_timeout=0.3, stall_timeout=10.0, retry_attempts=2)
    fake.script(Reply(stall_after=0), Reply(stall_after=0))
    error = await consume_until_error(client, [])
    assert error.kind is ErrorKind.TIMEOUT
    assert error.retryable
    assert len(fake.requests) == 2
    await fake.wait_cancelled(2, timeout=2.0)


# HTTP errors and retries


async def test_rate_limit_is_retried_and_answered_once(fake: FakeGLM, client: GLMClient) -> None:
    fake.script(Reply(status=429, code="1302", message="您的账户已达到速率限制"), Reply(text="ok"))
    events = await collect(client)
    assert text_of(events) == "ok"
    assert sum(isinstance(event, StreamEnd) for event in events) == 1
    assert len(fake.requests) == 2


async def test_overload_is_retried(fake: FakeGLM, client: GLMClient) -> None:
    fake.script(Reply(status=503, code="1305", message="busy"), Reply(text="ok"))
    assert text_of(await collect(client)) == "ok"
    assert len(fake.requests) == 2


async def test_server_errors_give_up_after_the_bounded_attempts(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    client = make_client(retry_attempts=3)
    fake.script(*[Reply(status=500, code="500", message="Internal Error")] * 3, Reply(text="x"))
    error = await consume_until_error(client, [])
    assert error.kind is ErrorKind.SERVER
    assert error.status == 500
    assert error.retryable
    assert len(fake.requests) == 3


async def test_retry_time_budget_bounds_the_attempts(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    client = make_client(retry_attempts=1000, retry_max_seconds=0.2, retry_initial_wait=0.1)
    fake.set_responder(lambda body: Reply(status=500, code="500"))
    started = time.monotonic()
    error = await consume_until_error(client, [])
    # the last retry's wait is cut to what is left of the budget (issue 14.2): it ends
    # with its 500, or, on a busy machine, with the budget's timeout
    assert error.kind in (ErrorKind.SERVER, ErrorKind.TIMEOUT), error
    assert error.retryable
    assert time.monotonic() - started < 5
    assert 2 <= len(fake.requests) < 1000


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (429, "1113", ErrorKind.NO_BALANCE),
        (401, "1002", ErrorKind.AUTH),
        (401, None, ErrorKind.AUTH),
        (400, "1301", ErrorKind.FILTERED),
        (400, "1261", ErrorKind.PROMPT_TOO_LONG),
        (400, "1210", ErrorKind.BAD_REQUEST),
        (400, "1214", ErrorKind.BAD_REQUEST),
        (404, None, ErrorKind.BAD_REQUEST),
    ],
)
async def test_errors_that_are_not_retried(
    fake: FakeGLM, client: GLMClient, status: int, code: str | None, kind: ErrorKind
) -> None:
    fake.script(Reply(status=status, code=code, message="nope"), Reply(text="never"))
    error = await consume_until_error(client, [])
    assert error.kind is kind
    assert not error.retryable
    assert error.status == status
    assert error.code == (code or str(status))
    assert len(fake.requests) == 1


async def test_invalid_messages_are_rejected_like_zhipu(fake: FakeGLM, client: GLMClient) -> None:
    error = await consume_until_error_with(client, [{"role": "system", "content": "only"}])
    assert error.kind is ErrorKind.BAD_REQUEST
    assert error.code == "1214"
    assert fake.violations == ["messages hold only a system message"]


async def consume_until_error_with(client: GLMClient, messages: list[dict[str, str]]) -> GLMError:
    with pytest.raises(GLMError) as caught:
        await collect(client, messages)
    return caught.value


# broken streams


async def test_disconnect_after_text_raises_network_without_retry(
    fake: FakeGLM, client: GLMClient
) -> None:
    fake.script(Reply(text="one two three", disconnect_after=2), Reply(text="never"))
    shown: list[str] = []
    error = await consume_until_error(client, shown)
    assert error.kind is ErrorKind.NETWORK
    assert "".join(shown) == "one two"
    assert len(fake.requests) == 1


async def test_disconnect_before_text_is_retried(fake: FakeGLM, client: GLMClient) -> None:
    fake.script(Reply(text="lost", disconnect_after=0), Reply(text="found"))
    assert text_of(await collect(client)) == "found"
    assert len(fake.requests) == 2


async def test_error_event_inside_the_stream_after_text(fake: FakeGLM, client: GLMClient) -> None:
    fake.script(
        Reply(text="one two three", stream_error_after=2, code="1301", message="unsafe"),
        Reply(text="never"),
    )
    shown: list[str] = []
    error = await consume_until_error(client, shown)
    assert error.kind is ErrorKind.FILTERED
    assert error.code == "1301"
    assert error.status is None
    assert "".join(shown) == "one two"
    assert len(fake.requests) == 1


async def test_error_event_before_text_is_retried_when_retryable(
    fake: FakeGLM, client: GLMClient
) -> None:
    fake.script(Reply(stream_error_after=0, code="1302", message="slow down"), Reply(text="ok"))
    assert text_of(await collect(client)) == "ok"
    assert len(fake.requests) == 2


async def test_unreachable_server_is_a_network_error(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    await fake.stop()
    client = make_client(retry_attempts=2)
    error = await consume_until_error(client, [])
    assert error.kind is ErrorKind.NETWORK


async def test_a_whole_json_completion_is_accepted(fake: FakeGLM, client: GLMClient) -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    fake.script(Reply(text="whole answer", json_body=True, usage=usage))
    events = await collect(client)
    assert events == [TextDelta("whole answer"), StreamEnd("stop", Usage(5, 2, 7))]


async def test_a_json_error_with_status_200_is_classified(fake: FakeGLM, client: GLMClient) -> None:
    fake.script(Reply(status=200, code="1301", message="unsafe"))
    error = await consume_until_error(client, [])
    assert error.kind is ErrorKind.FILTERED
    assert len(fake.requests) == 1


async def test_a_body_without_any_chunk_is_a_retryable_server_error(
    make_client: ClientFactory,
) -> None:
    seen = 0

    async def empty_stream(request: web.Request) -> web.StreamResponse:
        nonlocal seen
        seen += 1
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b": keep-alive\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v4/chat/completions", empty_stream)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        client = make_client(base_url=f"http://{host}:{port}/v4", retry_attempts=2)
        error = await consume_until_error(client, [])
    finally:
        await runner.cleanup()
    assert error.kind is ErrorKind.SERVER
    assert seen == 2


# concurrency


async def test_fifty_streams_share_eight_slots_without_threads_and_the_loop_stays_responsive(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    client = make_client(max_concurrent=8)
    fake.set_responder(
        lambda body: Reply(
            text=f"echo {body['messages'][-1]['content']} " + "word " * 10,
            first_token_delay=0.02,
            token_interval=0.005,
        )
    )
    worst_lag = 0.0
    most_in_flight = 0
    most_glm_threads = 0
    stop = asyncio.Event()

    async def watch() -> None:
        nonlocal worst_lag, most_in_flight, most_glm_threads
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(0.01)
            worst_lag = max(worst_lag, loop.time() - before - 0.01)
            most_in_flight = max(most_in_flight, client.in_flight)
            glm_threads = [t for t in threading.enumerate() if t.name.startswith("glm")]
            most_glm_threads = max(most_glm_threads, len(glm_threads))

    async def ask(i: int) -> str:
        messages = [{"role": "user", "content": f"q{i}"}]
        return text_of(await collect(client, messages))

    watcher = asyncio.create_task(watch())
    answers = await asyncio.gather(*(ask(i) for i in range(50)))
    stop.set()
    await watcher

    assert answers == [f"echo q{i} " + "word " * 10 for i in range(50)]
    assert len(fake.requests) == 50
    assert fake.max_in_flight <= 8
    assert most_in_flight <= 8
    # the SDK sends on the loop: no thread per request
    assert most_glm_threads == 0
    assert worst_lag < 0.25
    await wait_idle(client, fake)


# errors never leak secrets


async def test_error_text_never_holds_the_api_key(fake: FakeGLM, client: GLMClient) -> None:
    leaky = f"bad key {API_KEY} / {API_KEY.split('.')[1]} / {API_KEY.split('.')[0]}"
    fake.script(Reply(status=401, code="1000", message=leaky))
    error = await consume_until_error(client, [])
    assert error.kind is ErrorKind.AUTH
    for part in (API_KEY, *API_KEY.split(".")):
        assert part not in str(error)
        assert part not in repr(error)
    assert "llamas" not in str(error)
    assert error.__cause__ is None


@pytest.mark.parametrize(
    "reply",
    [
        Reply(status=429, code="1113", message="余额不足"),
        Reply(status=500, code="500", message="Internal Error"),
        Reply(text="a b c", disconnect_after=1),
        Reply(text="a b c", stream_error_after=1, code="1301", message="unsafe"),
    ],
)
async def test_error_text_holds_neither_key_nor_content(
    fake: FakeGLM, make_client: ClientFactory, reply: Reply
) -> None:
    client = make_client(retry_attempts=1)
    fake.script(reply)
    error = await consume_until_error(client, [])
    assert API_KEY not in str(error)
    assert "llamas" not in str(error)
    assert str(error).startswith("GLM ")


def test_glm_error_attributes_and_pickling() -> None:
    error = GLMError(ErrorKind.RATE_LIMITED, "slow down", code="1302", status=429)
    assert error.retryable
    assert str(error) == "GLM RATE_LIMITED (HTTP 429, code 1302): slow down"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.kind, copy.code, copy.status, str(copy)) == (
        error.kind,
        error.code,
        error.status,
        str(error),
    )
    assert not GLMError(ErrorKind.NO_BALANCE, code="1113", status=429).retryable
