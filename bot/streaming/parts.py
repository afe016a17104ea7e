"""Cutting a growing answer into messages that never change once cut.

A message that the answer has outgrown is sealed: its Markdown source is fixed, and only
the tail after it is rendered again on later updates. So the sealed messages are never
edited again, and each update costs one render of at most about one message of text, not
of the whole answer. Cuts are made in the Markdown source, between top-level blocks
(which later text cannot change) or, inside one oversized block, at a line break; a
fenced code block cut in two is closed and reopened with the same fence and language.
What the source cannot cut cleanly (one huge line) is left to the rendered-text splitter
of :mod:`bot.streaming.formatting`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pyromark

from bot.streaming.formatting import (
    PARSE_OPTIONS,
    PART_LIMIT,
    Rendered,
    render,
    render_parts,
    utf16_len,
)

# A block boundary is preferred to cutting inside the next block when it keeps at least
# this share of a message; otherwise the big block is cut at a line to fill the message.
_MIN_FILL = 0.5
_FENCE = re.compile(rb"( {0,3})(`{3,}|~{3,})")


@dataclass(frozen=True, slots=True)
class _Block:
    start: int  # UTF-8 byte offsets in the tail's source
    end: int
    fenced: bool


class PartTracker:
    """The parts of one growing answer; parts that no longer fit are sealed for good."""

    def __init__(self, limit: int = PART_LIMIT) -> None:
        self._limit = limit
        self._sealed: list[Rendered] = []
        self._sealed_source = ""  # the answer's prefix the sealed parts were cut from
        self._reopen = ""  # Markdown put before the tail, e.g. a reopened code fence

    @property
    def sealed_count(self) -> int:
        return len(self._sealed)

    def parts(self, markdown: str) -> list[Rendered]:
        """All parts of the answer so far: the sealed ones, then the tail cut to size."""
        if not markdown.startswith(self._sealed_source):
            # not a continuation of what was sealed (the caller restarted): start over
            self._sealed, self._sealed_source, self._reopen = [], "", ""
        while True:
            tail_md = self._reopen + markdown[len(self._sealed_source) :]
            tail = render(tail_md)
            if utf16_len(tail.text) <= self._limit:
                return [*self._sealed, tail] if tail.text else list(self._sealed)
            if not self._seal(markdown, tail_md):
                return [*self._sealed, *render_parts(tail_md, self._limit)]

    def _seal(self, markdown: str, tail_md: str) -> bool:
        """Seal the longest clean prefix of the tail that fits one message."""
        data = tail_md.encode("utf-8")
        blocks = _top_level_blocks(tail_md)
        if not blocks:
            return False

        def rendered(cut: int, suffix: bytes = b"") -> Rendered:
            return render((data[:cut] + suffix).decode("utf-8"))

        def fits(cut: int, suffix: bytes = b"") -> bool:
            return utf16_len(rendered(cut, suffix).text) <= self._limit

        # between blocks: a block is complete once the next one has started
        boundaries = [block.start for block in blocks[1:]]
        best = _last_true(boundaries, fits)
        if best is not None:
            part = rendered(best)
            if utf16_len(part.text) >= self._limit * _MIN_FILL:
                return self._commit(markdown, data, best, part, "")
        # inside the block that does not fit
        index = 0 if best is None else boundaries.index(best) + 1
        block = blocks[index]
        growing = index == len(blocks) - 1
        lines = _line_cuts(data, block, growing)
        if block.fenced and lines:
            opening = data[block.start : data.index(b"\n", block.start) + 1]
            fence = _FENCE.match(opening)
            if fence is not None:
                closing = b"\n" + fence.group(1) + fence.group(2) + b"\n"
                line = _last_true(lines, lambda cut: fits(cut, closing))
                if line is not None:
                    part = rendered(line, closing)
                    return self._commit(markdown, data, line, part, opening.decode("utf-8"))
        else:
            line = _last_true(lines, fits)
            if line is not None:
                return self._commit(markdown, data, line, rendered(line), "")
        if best is not None:
            return self._commit(markdown, data, best, rendered(best), "")
        return False

    def _commit(self, markdown: str, data: bytes, cut: int, part: Rendered, reopen: str) -> bool:
        consumed = len(data[:cut].decode("utf-8")) - len(self._reopen)
        if consumed <= 0:
            return False
        if part.text:
            self._sealed.append(part)
        self._sealed_source = markdown[: len(self._sealed_source) + consumed]
        self._reopen = reopen
        return True


def _top_level_blocks(markdown: str) -> list[_Block]:
    blocks: list[_Block] = []
    depth = 0
    for payload, where in pyromark.events_with_range(markdown, options=PARSE_OPTIONS):
        if isinstance(payload, dict) and "Start" in payload:
            if depth == 0:
                opened = payload["Start"]
                code = opened.get("CodeBlock") if isinstance(opened, dict) else None
                fenced = isinstance(code, dict) and "Fenced" in code
                blocks.append(_Block(where["start"], where["end"], fenced))
            depth += 1
        elif isinstance(payload, dict) and "End" in payload:
            depth -= 1
        elif depth == 0:  # a leaf at the top, e.g. a thematic break
            blocks.append(_Block(where["start"], where["end"], False))
    return blocks


def _line_cuts(data: bytes, block: _Block, growing: bool) -> list[int]:
    """Offsets just after a line break inside the block, where it may be cut."""
    first = data.find(b"\n", block.start)
    if first < 0:
        return []
    end = block.end
    if block.fenced:
        body_end = block.end
        while body_end > block.start and data[body_end - 1] in b"\r\n":
            body_end -= 1
        closing = data.rfind(b"\n", block.start, body_end)
        fence = _FENCE.match(data, block.start)
        if fence is not None and closing > first:
            tail = data[closing + 1 : body_end].strip()
            if tail and tail.startswith(fence.group(2)) and not tail.strip(tail[:1]):
                end = closing + 1  # the closing fence stays out of the cut part
    if growing:
        # a line of a block still being written may be reread with the next one
        # (a setext underline, a table delimiter row): cut only before a complete line
        end = min(end, data.rfind(b"\n", block.start) + 1)
    cuts = []
    position = first + 1
    while 0 < position < end:
        cuts.append(position)
        position = data.find(b"\n", position) + 1
    return cuts


def _last_true(candidates: list[int], predicate: Callable[[int], bool]) -> int | None:
    """The last candidate satisfying a predicate that holds for a prefix of them."""
    lo, hi = 0, len(candidates)
    while lo < hi:
        mid = (lo + hi) // 2
        if predicate(candidates[mid]):
            lo = mid + 1
        else:
            hi = mid
    return candidates[lo - 1] if lo else None
