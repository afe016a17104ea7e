"""Process-level memory settings: what keeps a long-running bot small and responsive."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from aiogram.fsm.middleware import FSMContextMiddleware

from bot.gc_tuning import THRESHOLDS, tune_garbage_collector
from tests.harness import running_bot


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    session_frozen = gc.get_freeze_count() > 0  # tests/conftest.py freezes after collection
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    if session_frozen:
        gc.freeze()


def test_tuning_freezes_startup_objects_and_raises_thresholds(restored_gc: None) -> None:
    survivor = [object() for _ in range(1000)]
    tune_garbage_collector()
    assert gc.get_threshold() == THRESHOLDS
    # everything alive at start-up is out of every later collection's way
    assert gc.get_freeze_count() >= len(survivor)


async def test_no_per_user_state_is_kept_between_updates(redis_url: str, key_prefix: str) -> None:
    """aiogram's FSM would keep a record per user and chat forever (the bot has no
    multi-step dialogues): it is off."""
    async with running_bot(redis_url, key_prefix) as h:
        middlewares = h.app.dispatcher.update.outer_middleware
        assert not any(isinstance(m, FSMContextMiddleware) for m in middlewares)
        for user in (7101, 7102, 7103):
            h.tg.private_text(user, "hello")
        await h.tg.wait_for(lambda: len(h.glm.requests) == 3, what="three questions")
        await h.wait_idle()
        assert not getattr(h.app.dispatcher.fsm.storage, "storage", None)
