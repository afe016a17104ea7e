"""Handler flags that the middlewares read once aiogram has chosen the handler."""

from __future__ import annotations

from typing import Literal

# The handler sends the message to GLM. Its value says how the message is addressed,
# hence when it really is a question: "private" (any text that is not a command), "ask"
# (/ask with a question), "mention" (a group message mentioning or replying to the bot).
GLM = "glm"
Addressing = Literal["private", "ask", "mention"]
