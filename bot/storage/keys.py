"""Conversation identity and the Redis key scheme: the only place that formats keys.

Every key starts with ``<prefix>:b<bot_id>:`` so several bots (or a test run) can share
one Redis. Keys that belong to a chat carry the Redis Cluster hash tag ``{c<chat_id>}``:
a group's and its forum topics' keys then live in one slot, and a Lua script may read a
topic's persona and fall back to the group's in the same call. Examples::

    glmbot:b42:{c-100123}:t0:messages     history of the group (or of a private chat)
    glmbot:b42:{c-100123}:t7:messages     history of forum topic 7
    glmbot:b42:{c-100123}:t7:persona      persona of topic 7 (t0: the whole chat's)
    glmbot:b42:{c-100123}:settings        per-chat preferences hash (e.g. "listen")
    glmbot:b42:update:<update id>         bot-wide keys

Every key the bot writes has a named method here; no other module builds key strings.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConversationKey", "Keys"]


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """One conversation: a private chat, a group, or one forum topic of a group.

    A thread id of 0 means "no topic" and is normalised to None, so both spellings name
    the same conversation in every store.
    """

    chat_id: int
    thread_id: int | None = None

    def __post_init__(self) -> None:
        if self.thread_id == 0:
            object.__setattr__(self, "thread_id", None)

    @property
    def chat(self) -> ConversationKey:
        """The chat-wide scope this conversation belongs to (itself when not a topic)."""
        return self if self.thread_id is None else ConversationKey(self.chat_id)


def _check_name(name: str, what: str) -> str:
    # A brace would start another hash tag (or end ours) and silently move keys to
    # another cluster slot, breaking scripts that touch a chat's keys together.
    if not name or "{" in name or "}" in name:
        raise ValueError(f"{what} must be non-empty and contain no braces: {name!r}")
    return name


class Keys:
    """Builds every Redis key of one bot under one prefix."""

    __slots__ = ("_base",)

    def __init__(self, prefix: str, bot_id: int) -> None:
        self._base = f"{_check_name(prefix, 'key prefix')}:b{bot_id}:"

    @property
    def base(self) -> str:
        """The common start of every key, e.g. ``glmbot:b42:``."""
        return self._base

    def chat_scoped(self, chat_id: int, name: str) -> str:
        """A key that belongs to one chat (shares the chat's cluster hash tag)."""
        return f"{self._base}{{c{chat_id}}}:{_check_name(name, 'key name')}"

    def bot_scoped(self, name: str) -> str:
        """A key that belongs to the bot as a whole (dedup, quotas, leases...)."""
        return f"{self._base}{_check_name(name, 'key name')}"

    def _thread_scoped(self, key: ConversationKey, name: str) -> str:
        return self.chat_scoped(key.chat_id, f"t{key.thread_id or 0}:{name}")

    def messages(self, key: ConversationKey) -> str:
        """The list of stored messages of a conversation, oldest first."""
        return self._thread_scoped(key, "messages")

    def persona(self, key: ConversationKey) -> str:
        """The persona hash of exactly this scope (a topic, or the chat for thread None)."""
        return self._thread_scoped(key, "persona")

    def append_marker(self, key: ConversationKey, token: str) -> str:
        """A short-lived marker that makes one append idempotent under client retries."""
        return self._thread_scoped(key, f"append:{token}")

    def chat_settings(self, chat_id: int) -> str:
        """The per-chat preferences hash (``listen``, ``model``...)."""
        return self.chat_scoped(chat_id, "settings")

    def admins(self, chat_id: int) -> str:
        """The cached set of a group's administrators."""
        return self.chat_scoped(chat_id, "admins")

    def refusal(self, chat_id: int, user_id: int) -> str:
        """Marks a stranger told why the bot stays silent (once per interval)."""
        return self.chat_scoped(chat_id, f"refused:{user_id}")

    def lease(self, key: ConversationKey) -> list[str]:
        """A conversation's lease, its queue of tickets, their deadlines and its counter."""
        lease = self._thread_scoped(key, "lease")
        return [lease, f"{lease}:queue", f"{lease}:alive", f"{lease}:seq"]

    def quota(self, chat_id: int, name: str, *, user: bool) -> str:
        """A limit or usage counter of a user (in their private chat's slot) or a chat."""
        return self.chat_scoped(chat_id, f"user:{name}" if user else name)

    def usage(self, period: str, model: str | None = None) -> str:
        """Bot-wide usage of a period, of one model or in total."""
        return self.bot_scoped(f"usage:{period}:m:{model}" if model else f"usage:{period}:total")

    def usage_board(self, month: str, board: str) -> str:
        """The month's biggest users or chats."""
        return self.bot_scoped(f"usage:{month}:top:{board}")

    def update(self, update_id: int) -> str:
        """Claims one Telegram update (dedup)."""
        return self.bot_scoped(f"update:{update_id}")

    def alert(self, cause: str) -> str:
        """Marks an owner alert sent (once per interval)."""
        return self.bot_scoped(f"alert:{cause}")

    def pending(self) -> str:
        """The journal of turns in progress."""
        return self.bot_scoped("pending")

    def instance(self, instance: str) -> str:
        """A process's liveness mark."""
        return self.bot_scoped(f"instance:{instance}")

    def replicas(self) -> str:
        """The live replicas, with their deadlines."""
        return self.bot_scoped("replicas")

    def stop_channel(self) -> str:
        """The pub/sub channel of /stop requests across replicas."""
        return self.bot_scoped("stop")
