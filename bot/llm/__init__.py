"""The GLM client: the synchronous zhipuai SDK bridged to async streaming, errors mapped.

``client`` is the entry point; ``transport`` and ``generation`` carry each request over
aiohttp on the event loop; ``sse`` decodes Zhipu's event stream; ``errors`` maps every
failure to an ``ErrorKind`` and holds the retry policy.
"""

from bot.llm.client import GLMClient, GLMOptions, StreamEnd, StreamEvent, TextDelta, Usage
from bot.llm.errors import BUSINESS_CODES, RETRYABLE_KINDS, ErrorKind, GLMError

__all__ = [
    "BUSINESS_CODES",
    "RETRYABLE_KINDS",
    "ErrorKind",
    "GLMClient",
    "GLMError",
    "GLMOptions",
    "StreamEnd",
    "StreamEvent",
    "TextDelta",
    "Usage",
]
