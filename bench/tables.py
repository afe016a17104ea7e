"""Markdown table helpers shared by the report's sections."""

from __future__ import annotations

import math
from typing import Any


def num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if math.isinf(value):
            return "∞"
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def pair(spread: dict[str, Any] | None, digits: int = 0) -> str:
    if not spread:
        return "–"
    return f"{num(spread.get('p50'), digits)} / {num(spread.get('p99'), digits)}"


def verdict(condition: bool | None) -> str:
    if condition is None:
        return "not measured"
    return "**met**" if condition else "**not met**"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def measured(section: dict[str, Any]) -> str:
    load = section.get("loadavg_after")
    at_end = f", load average {load} at its end" if load else ""
    return f"*Measured {section.get('measured_at', '?')}, {section.get('mode', '?')} mode{at_end}.*"


def other_load(run: dict[str, Any]) -> str:
    """The CPU other processes took during a run, as a sentence (the machine is shared)."""
    cores = run.get("other_processes_cpu_cores")
    if cores is None:
        return ""
    return f"Processes outside the benchmark used {cores:.2f} CPU cores meanwhile. "


# The header of `private_and_group_rows`' tables.
PRIVATE_AND_GROUP_HEADER = [
    "path",
    "private p50 / p99 (ms)",
    "private max (ms)",
    "group p50 / p99 (ms)",
    "group max (ms)",
]


def private_and_group_rows(
    section: dict[str, Any], labelled: tuple[tuple[str, str], ...]
) -> list[list[str]]:
    """One row per (key, label): p50 / p99 and max of `<key>_private_ms` and of
    `<key>_group_ms`."""
    rows = []
    for key, label in labelled:
        private = section.get(f"{key}_private_ms") or {}
        group = section.get(f"{key}_group_ms") or {}
        rows.append(
            [
                label,
                pair(private, 1),
                num(private.get("max"), 1),
                pair(group, 1),
                num(group.get("max"), 1),
            ]
        )
    return rows
