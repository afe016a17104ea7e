"""SSE decoding of GLM bodies as they arrive in arbitrary reads."""

from __future__ import annotations

import itertools
import json

from hypothesis import given
from hypothesis import strategies as st

from bot.llm import SearchResult
from bot.llm.sse import ChunkFields, SSEDecoder, parse_chunk

BODY = (
    'data: {"choices":[{"delta":{"content":"你好"}}]}\n\n'
    ": keep-alive\n\n"
    'data: {"choices":[{"delta":{"content":" 🎉"}}]}\r\n\r\n'
    "event: error\n"
    'data: {"error":{"code":"1301",\n'
    'data: "message":"unsafe"}}\n\n'
    "data: [DONE]\n\n"
).encode()

EXPECTED = [
    (None, '{"choices":[{"delta":{"content":"你好"}}]}'.encode()),
    (None, '{"choices":[{"delta":{"content":" 🎉"}}]}'.encode()),
    ("error", b'{"error":{"code":"1301",\n"message":"unsafe"}}'),
    (None, b"[DONE]"),
]


def decode(reads: list[bytes]) -> list[tuple[str | None, bytes]]:
    decoder = SSEDecoder()
    events = [event for read in reads for event in decoder.feed(read)]
    return events + decoder.flush()


def test_events_of_one_whole_body() -> None:
    assert decode([BODY]) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(BODY)), max_size=12))
def test_any_split_into_reads_gives_the_same_events(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(BODY)]
    reads = [BODY[start:end] for start, end in itertools.pairwise(bounds)]
    events = decode(reads)
    assert events == EXPECTED
    # multi-byte characters split between reads come out whole
    assert json.loads(events[0][1])["choices"][0]["delta"]["content"] == "你好"


def test_a_last_event_without_its_blank_line_is_kept_at_the_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"a": 1}\ndata: {"b"') == []
    assert decoder.flush() == [(None, b'{"a": 1}\n{"b"')]


def test_fields_of_a_chunk_and_of_a_whole_completion() -> None:
    chunk = {
        "choices": [{"delta": {"content": "hi"}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    assert parse_chunk(chunk) == ChunkFields("hi", "", "length", (3, 1, 4, 0))
    completion = {"choices": [{"message": {"content": "whole"}, "finish_reason": "stop"}]}
    assert parse_chunk(completion) == ChunkFields("whole", "", "stop", None)
    assert parse_chunk(["not", "a", "chunk"]) == ChunkFields("", "", None, None)


def test_reasoning_and_reasoning_tokens() -> None:
    chunk = {"choices": [{"delta": {"role": "assistant", "reasoning_content": "hmm"}}]}
    assert parse_chunk(chunk) == ChunkFields("", "hmm", None, None)
    usage = {
        "prompt_tokens": 3,
        "completion_tokens": 9,
        "total_tokens": 12,
        "completion_tokens_details": {"reasoning_tokens": 7},
    }
    assert parse_chunk({"choices": [], "usage": usage}).usage == (3, 9, 12, 7)


def test_web_search_results_with_missing_or_odd_fields() -> None:
    raw = [
        {"title": "T", "link": "https://a", "refer": "ref_1", "media": "M", "icon": "x"},
        {"title": 5, "link": "https://b"},
        "not a result",
    ]
    fields = parse_chunk({"id": "1", "web_search": raw})
    assert fields.search == (
        SearchResult("T", "https://a", "ref_1", "M"),
        SearchResult("", "https://b", "", ""),
    )
    assert (fields.text, fields.finish_reason) == ("", None)
    assert parse_chunk({"choices": []}).search is None
