"""Handler flags that the middlewares read once aiogram has chosen the handler."""

from __future__ import annotations

from typing import Literal

# The handler may send the message to GLM; whether it does is its filter's decision, in
# handler data (`handlers.addressing`). The value names how such a message is addressed:
# "private" (any text that is not a command), "ask" (/ask with a question), "mention" (a
# group message mentioning or replying to the bot).
GLM = "glm"
Addressing = Literal["private", "ask", "mention"]
