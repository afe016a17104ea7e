"""GLM rejects the API key (issue 14.7): users hear "the owner has been notified" only when
an alert actually went out to an owner."""

from __future__ import annotations

from bot.texts import text
from tests.fakes.glm import Reply
from tests.harness import running_bot

USER, OTHER_USER, OWNER = 3501, 3502, 3599
KEY_REJECTED = Reply(status=401, code="1000", message="Authentication failed")
NOTIFIED = text("service_unavailable", "en")
QUIET = text("service_unavailable_quiet", "en")
ALERT_START = text("owner_alert_auth", "en", detail="").split("\n")[0]


async def test_without_owners_the_user_is_not_told_of_a_notice(
    redis_url: str, key_prefix: str
) -> None:
    async with running_bot(redis_url, key_prefix, reply=KEY_REJECTED) as h:
        h.tg.private_text(USER, "Hello?")
        await h.wait_for_messages(USER, 1)
        await h.wait_idle()
        assert h.texts(USER) == [QUIET]
        assert "owner" not in QUIET.lower()
        assert len(h.glm.requests) == 1


async def test_with_an_owner_the_owner_is_alerted_and_the_user_told(
    redis_url: str, key_prefix: str
) -> None:
    async with running_bot(
        redis_url, key_prefix, reply=KEY_REJECTED, telegram={"owners": [OWNER]}
    ) as h:
        h.tg.private_text(USER, "Hello?")
        await h.wait_for_messages(USER, 1)
        await h.wait_idle()
        assert h.texts(USER) == [NOTIFIED]
        (alert,) = h.texts(OWNER)
        assert alert.startswith(ALERT_START)
        assert "Authentication failed" in alert
        # a second user within the alert interval: the owner was told, and not again
        h.tg.private_text(OTHER_USER, "Anyone?")
        await h.wait_for_messages(OTHER_USER, 1)
        await h.wait_idle()
        assert h.texts(OTHER_USER) == [NOTIFIED]
        assert len(h.texts(OWNER)) == 1


async def test_an_alert_that_failed_to_reach_the_owner_is_not_claimed(
    redis_url: str, key_prefix: str
) -> None:
    async with running_bot(
        redis_url, key_prefix, reply=KEY_REJECTED, telegram={"owners": [OWNER]}
    ) as h:
        # the next sendMessage is the alert: the owner never opened a chat with the bot
        h.tg.fail_next(
            "sendMessage", error_code=403, description="Forbidden: bot can't initiate conversation"
        )
        h.tg.private_text(USER, "Hello?")
        await h.wait_for_messages(USER, 1)
        await h.wait_idle()
        refused = [c.params["chat_id"] for c in h.tg.calls_of("sendMessage") if not c.ok]
        assert refused == [OWNER], "the alert was tried"
        assert h.texts(OWNER) == []
        assert h.texts(USER) == [QUIET]
