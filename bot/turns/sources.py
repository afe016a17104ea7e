"""Web search sources in an answer: GLM marks where it used a source with ``[ref_N]``;
the user sees the number N, linked to the source, and the sources listed at the end."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.llm import SearchResult

__all__ = ["cite", "with_sources"]

_MARKER = re.compile(r"\[ref_(\d+)\]")
# an unfinished marker at the end of a growing answer ("[re", "[ref_1")
_PARTIAL = re.compile(r"\[(r(e(f(_\d*)?)?)?)?$")


def _links(sources: Sequence[SearchResult]) -> dict[str, str]:
    return {source.refer: source.link for source in sources if source.refer and source.link}


def cite(markdown: str, sources: Sequence[SearchResult], *, growing: bool = False) -> str:
    """`markdown` with each ``[ref_N]`` as a linked [N] (a plain one when the source is not
    known yet); a growing answer also hides a marker still being written."""
    links = _links(sources)

    def number(match: re.Match[str]) -> str:
        n = match.group(1)
        link = links.get(f"ref_{n}")
        # the brackets escaped, so the link shows "[1]" as the plain number does
        return f"[\\[{n}\\]]({link})" if link else f"[{n}]"

    text = _MARKER.sub(number, markdown)
    return _PARTIAL.sub("", text) if growing else text


def with_sources(markdown: str, sources: Sequence[SearchResult], heading: str) -> str:
    """The final answer: markers cited, then the sources as a numbered list."""
    text = cite(markdown, sources)
    listed = [
        f"{source.refer.removeprefix('ref_') or n}. [{_title(source)}]({source.link})"
        for n, source in enumerate(sources, 1)
        if source.link
    ]
    if not listed:
        return text
    return f"{text}\n\n**{heading}**\n" + "\n".join(listed)


def _title(source: SearchResult) -> str:
    title = " ".join(source.title.split()) or source.link
    # brackets would end the link text early
    return title.replace("[", "(").replace("]", ")")
