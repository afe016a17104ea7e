"""GLMClient.draw and role-play `meta`: the real zhipuai SDK against the fake GLM server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.llm import ErrorKind, GLMClient, GLMError, GLMOptions, StreamEnd
from tests.fakes.glm import FakeGLM
from tests.fakes.glm_images import PICTURE, PictureReply
from tests.harness import small_glm_client


@pytest.fixture
async def fake() -> AsyncIterator[FakeGLM]:
    async with FakeGLM() as server:
        yield server


@pytest.fixture
async def client(fake: FakeGLM) -> AsyncIterator[GLMClient]:
    glm = small_glm_client(fake)
    try:
        yield glm
    finally:
        await glm.aclose()


async def test_a_picture_is_drawn_and_fetched(fake: FakeGLM, client: GLMClient) -> None:
    picture = await client.draw("a red fox in the snow", model="cogview-3-flash")
    assert (picture.data, picture.content_type) == (PICTURE, "image/png")
    assert fake.images.requests == [{"model": "cogview-3-flash", "prompt": "a red fox in the snow"}]
    assert fake.images.fetches == 1


async def test_a_size_is_sent_only_when_asked(fake: FakeGLM, client: GLMClient) -> None:
    await client.draw("a fox", model="cogview-4", size="768x1344")
    assert fake.images.requests[-1]["size"] == "768x1344"


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (PictureReply(status=400, code="1301", message="unsafe content"), ErrorKind.FILTERED),
        (PictureReply(status=500), ErrorKind.SERVER),
        (PictureReply(status=429, code="1113", message="arrears"), ErrorKind.NO_BALANCE),
        (PictureReply(file_status=404), ErrorKind.NETWORK),
        (PictureReply(content_type="text/html"), ErrorKind.UNKNOWN),
    ],
)
async def test_failures_are_glm_errors(
    fake: FakeGLM, client: GLMClient, reply: PictureReply, kind: ErrorKind
) -> None:
    fake.images.script(reply)
    with pytest.raises(GLMError) as caught:
        await client.draw("a fox", model="cogview-3-flash")
    assert caught.value.kind is kind
    assert "test-key-secret" not in str(caught.value)


async def test_cancelling_closes_the_request(fake: FakeGLM, client: GLMClient) -> None:
    fake.images.script(PictureReply(delay=30))
    drawing = asyncio.create_task(client.draw("a slow fox", model="cogview-3-flash"))
    await fake.wait_for(lambda: bool(fake.images.requests), what="the image request")
    drawing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await drawing
    await fake.wait_for(lambda: fake.images.cancelled == 1, what="the request closed")
    assert fake.images.fetches == 0
    # the slot is free again: the next picture is drawn
    assert (await client.draw("a fox", model="cogview-3-flash")).data == PICTURE


async def test_meta_reaches_a_role_play_model(fake: FakeGLM, client: GLMClient) -> None:
    meta = {"bot_name": "Sherlock", "bot_info": "A detective", "user_name": "Ann", "user_info": "x"}
    options = GLMOptions(model="charglm-4", max_tokens=256, temperature=0.7, meta=meta)
    events = [e async for e in client.stream([{"role": "user", "content": "hi"}], options)]
    assert isinstance(events[-1], StreamEnd)
    assert fake.requests[-1]["meta"] == meta
    assert fake.violations == []


async def test_the_fake_refuses_role_play_without_meta(fake: FakeGLM, client: GLMClient) -> None:
    options = GLMOptions(model="charglm-4", max_tokens=256, temperature=0.7)
    with pytest.raises(GLMError) as caught:
        async for _ in client.stream([{"role": "user", "content": "hi"}], options):
            pass
    assert caught.value.kind is ErrorKind.BAD_REQUEST
    assert fake.violations == ["a role-play model needs meta"]
