"""The GLM client: the synchronous zhipuai SDK bridged to async streaming, errors mapped.

``client`` is the entry point; ``request`` holds the options and builds the SDK call;
``events`` the typed stream events; ``transport`` and ``generation`` carry each request
over aiohttp on the event loop, and ``transcription`` a speech-to-text request
(``GLMClient.transcribe``) the same way; ``sse`` decodes Zhipu's event stream; ``errors`` maps
every failure to an ``ErrorKind`` and holds the retry policy. The SDK is imported only
inside this package.
"""

from bot.llm.client import GLMClient
from bot.llm.errors import BUSINESS_CODES, RETRYABLE_KINDS, ErrorKind, GLMError
from bot.llm.events import (
    ReasoningDelta,
    SearchResult,
    SearchResults,
    StreamEnd,
    StreamEvent,
    TextDelta,
    Usage,
)
from bot.llm.images import Picture
from bot.llm.request import GLMOptions, Messages

__all__ = [
    "BUSINESS_CODES",
    "RETRYABLE_KINDS",
    "ErrorKind",
    "GLMClient",
    "GLMError",
    "GLMOptions",
    "Messages",
    "Picture",
    "ReasoningDelta",
    "SearchResult",
    "SearchResults",
    "StreamEnd",
    "StreamEvent",
    "TextDelta",
    "Usage",
]
