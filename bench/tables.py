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
