"""CPU of rendering one draft or edit: the answer so far, Markdown to Telegram text.

The fake GLM answers in plain words, so the load scenarios pay the least formatting can
cost; real answers carry Markdown. This measures `PartTracker.parts` (what every draft
and edit calls on the whole answer so far) in-process for both kinds of text.
"""

from __future__ import annotations

import time
from typing import Any

from bench.analysis import percentile
from bot.streaming.parts import PartTracker

_MARKDOWN = (
    "Here is **bold** and `code`, then a list:\n\n- one *item*\n- two [links](https://e.x)\n\n"
    "```python\nprint('x')\n```\n\n"
)


def _text(kind: str, chars: int) -> str:
    unit = _MARKDOWN if kind == "markdown" else "plain words of an answer "
    return (unit * (chars // len(unit) + 1))[:chars]


def measure(sizes: list[int], *, iterations: int = 30) -> list[dict[str, Any]]:
    rows = []
    for kind in ("plain", "markdown"):
        for chars in sizes:
            text = _text(kind, chars)
            PartTracker().parts(text)  # warm-up: imports, caches
            samples = []
            for _ in range(iterations):
                started = time.process_time()
                PartTracker().parts(text)
                samples.append(time.process_time() - started)
            p50 = percentile(samples, 50) or 0.0
            rows.append(
                {
                    "kind": kind,
                    "chars": chars,
                    "ms_p50": round(p50 * 1000, 2),
                    "us_per_char": round(p50 * 1e6 / chars, 2),
                }
            )
    return rows
