"""Results as JSON (bench/results/) and as Markdown tables in bench/README.md.

The README keeps everything outside the marker comments; a re-run replaces what is
between them. Scenarios not run this time keep their last figures from
``results/latest.json`` (each section says when it was measured).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import report_answers
from bench.tables import (
    PRIVATE_AND_GROUP_HEADER,
    measured,
    num,
    other_load,
    pair,
    private_and_group_rows,
    table,
    verdict,
)

START = "<!-- bench:results:start -->"
END = "<!-- bench:results:end -->"
BASELINE = (
    "the most popular open-source bot completes only 115 of 200 simultaneous answers under "
    "Telegram's limits, and shows first text after 6.6 s median at 200 chats"
)


def merge(previous: dict[str, Any] | None, current: dict[str, Any]) -> dict[str, Any]:
    merged = {"meta": current["meta"], "scenarios": dict((previous or {}).get("scenarios", {}))}
    merged["scenarios"].update(current["scenarios"])
    return merged


def write_json(results_dir: Path, run: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """This run's file, and the merged view of all runs (latest.json)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = run["meta"]["started_at"].replace(":", "").replace(" ", "T")
    path = results_dir / f"bench-{stamp}.json"
    path.write_text(json.dumps(run, indent=2, default=_json_default))
    latest_path = results_dir / "latest.json"
    previous = None
    if latest_path.exists():
        try:
            previous = json.loads(latest_path.read_text())
        except ValueError:
            previous = None
    merged = merge(previous, run)
    latest_path.write_text(json.dumps(merged, indent=2, default=_json_default))
    return path, merged


def _json_default(value: Any) -> Any:
    return str(value)


def update_readme(readme: Path, markdown: str) -> None:
    text = readme.read_text() if readme.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    if START not in text or END not in text:
        text = f"{text.rstrip()}\n\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{markdown.strip()}\n{END}{tail}")


def _lag(run: dict[str, Any]) -> str:
    lag = run.get("loop_lag_ms") or {}
    if lag.get("p99_above_largest"):
        return f"> {num(lag.get('largest_bucket_ms'))}"
    if lag.get("p99_le") is not None:
        return f"≤ {num(lag['p99_le'])}"
    if "unavailable" in lag:
        return "n/a"
    values = [v for v in lag.values() if isinstance(v, int | float)]
    return num(max(values)) if values else "–"


def _redis(run: dict[str, Any]) -> str:
    redis = run.get("redis_per_answer") or {}
    return f"{num(redis.get('commands'))} / {num(redis.get('round_trips'), 2)}"


# -- sections -----------------------------------------------------------------------------


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    s = results["scenarios"]
    parts = [
        f"Last run: {meta['started_at']} ({meta['mode']} mode, `{meta['command']}`), "
        f"commit `{meta['commit']}`, {meta['cpus']} CPUs, Python {meta['python']}, "
        f"{meta['redis_version']}. Load average before the run: {meta['loadavg_before']}"
        + (f"; after it: {meta['loadavg_after']}." if meta.get("loadavg_after") else "."),
        _targets(s),
        _concurrency(s.get("concurrency")),
        _limits(s.get("limits")),
        _overhead(s.get("overhead")),
        report_answers.reasoning_section(s.get("reasoning")),
        report_answers.photo_section(s.get("photos")),
        _redis_section(s),
        _history(s.get("history")),
        _formatting(s.get("formatting")),
        _scaleout(s.get("scaleout")),
    ]
    return "\n\n".join(p for p in parts if p)


def _at_most_10_ms(ms: float) -> bool:
    return ms <= 10


def _under_5_ms(ms: float) -> bool:
    return ms < 5


def _targets(s: dict[str, Any]) -> str:
    rows: list[list[str]] = []
    over = s.get("overhead")
    conc = (s.get("concurrency") or {}).get("runs") or []
    lim = (s.get("limits") or {}).get("runs") or []
    if over:
        beyond = over.get("first_visible_beyond_glm_private_ms") or {}
        group_beyond = over.get("first_visible_beyond_glm_group_ms") or {}
        p50 = beyond.get("p50")
        rows.append(
            [
                "first visible text within 50 ms of the first GLM token (median, low concurrency)",
                f"{num(p50)} ms (private, drafts); groups {num(group_beyond.get('p50'))} ms",
                verdict(None if p50 is None else p50 <= 50),
            ]
        )
        group = over.get("group_calls") or {}
        if group.get("answers"):
            rows.append(
                [
                    "Bot API calls per answer ≤ 2 + ⌈stream s / edit interval⌉ + splits "
                    "(groups, edits)",
                    f"{group['within']}/{group['answers']} answers; mean "
                    f"{num(group['calls_mean'])} calls vs bound {num(group['bound_mean'])}",
                    verdict(group["within"] == group["answers"]),
                ]
            )
        private = over.get("private_calls") or {}
        edit_bound = over.get("private_calls_edit_interval") or {}
        if private.get("answers"):
            rows.append(
                [
                    "the same bound for private chats (drafts)",
                    f"{edit_bound.get('within')}/{edit_bound.get('answers')} within the "
                    f"edit-interval bound ({num(edit_bound.get('bound_mean'))}); "
                    f"{private['within']}/{private['answers']} within the draft-interval "
                    f"bound ({num(private['bound_mean'])}); mean "
                    f"{num(private['calls_mean'])} calls",
                    verdict(edit_bound.get("within") == edit_bound.get("answers")),
                ]
            )
        # issue 11 raised the update -> GLM request p50 target from < 5 ms to <= 10 ms (the
        # dedup claim and the journal's record each cost a round trip before the request
        # now); bench/README.md keeps the old target and figures
        for key, label, p50_ok, wording in (
            (
                "update_to_glm_request",
                "update reaches the bot → GLM request sent",
                _at_most_10_ms,
                "p50 ≤ 10 ms (was < 5 ms), p99 < 20 ms",
            ),
            (
                "last_chunk_to_final",
                "last GLM chunk → final Telegram message/edit",
                _under_5_ms,
                "p50 < 5 ms, p99 < 20 ms",
            ),
        ):
            private = over.get(f"{key}_private_ms") or {}
            group = over.get(f"{key}_group_ms") or {}
            p50, p99 = private.get("p50"), private.get("p99")
            met = None if p50 is None or p99 is None else p50_ok(p50) and p99 < 20
            shown = f"private {pair(private, 1)} ms; groups {pair(group, 1)} ms"
            outcome = verdict(met)
            if key == "update_to_glm_request" and group.get("p50") is not None:
                group_met = p50_ok(group["p50"]) and group.get("p99", 0) < 20
                outcome = verdict(bool(met) and group_met)
                if met and not group_met:
                    outcome += " (met in private chats, not in groups)"
            if key == "last_chunk_to_final":
                # a group's final edit waits for the chat's 1 s slot: pacing, not overhead
                shown += " (groups: waiting for the chat's next 1 s slot)"
                outcome += " (private chats)"
            rows.append([f"{label}: {wording}", shown, outcome])
    rows += report_answers.reasoning_targets(s.get("reasoning"))
    rows += report_answers.photo_targets(s.get("photos"))
    for run in lim:
        done = run["completed"] == run["chats"]
        rows.append(
            [
                f"Telegram-like limits ({run['private_method']}): zero user-visible failures, "
                "every final text complete",
                f"{run['completed']}/{run['chats']} complete, {run['rejected_429']} 429s issued",
                verdict(done),
            ]
        )
    big = max(conc, key=lambda r: r["chats"], default=None)
    if big:
        p99 = (big.get("first_visible_beyond_glm_ms") or {}).get("p99")
        rows.append(
            [
                f"first text p99 < 1 s beyond GLM's first token at 1,000 chats "
                f"(largest run: {big['chats']:,})",
                f"{num(p99, 0)} ms",
                verdict(None if p99 is None or big["chats"] < 1000 else p99 < 1000),
            ]
        )
        rss = big.get("peak_rss_mb")
        rows.append(
            [
                f"peak RSS < 300 MB at 1,000 concurrent answers (largest run: {big['chats']:,})",
                f"{num(rss)} MB",
                verdict(None if rss is None or big["chats"] < 1000 else rss < 300),
            ]
        )
        rows.append(
            [
                "all answers complete at every concurrency level",
                ", ".join(f"{r['completed']}/{r['chats']}" for r in conc),
                verdict(all(r["completed"] == r["chats"] for r in conc)),
            ]
        )
    steady: list[float] = []
    setup: list[float] = []
    periodic: list[float] = []
    for r in conc + ([over] if over else []):
        redis = r.get("redis_per_answer") or {}
        if redis.get("round_trips") is not None:
            opened = redis.get("connection_setup_round_trips") or 0.0
            background = redis.get("periodic_round_trips") or 0.0
            steady.append(redis["round_trips"] - opened - background)
            setup.append(opened)
            periodic.append(background)
    if steady:
        rows.append(
            [
                "≤ 6 Redis round trips per answer (was ≤ 4; excluding lease renewals)",
                f"{num(min(steady), 2)} – {num(max(steady), 2)} per answer, plus up to "
                f"{num(max(setup), 2)} for opening pooled connections and "
                f"{num(max(periodic), 2)} of the process's periodic heartbeats (counted from "
                "MONITOR, which splits a pipeline whose commands reach a busy server over "
                "50 µs apart; counted exactly, a private answer costs 6: "
                "tests/test_redis_cost.py)",
                verdict(max(steady) <= 6),
            ]
        )
    hist = (s.get("history") or {}).get("rows") or []
    if hist:
        glm4 = [r for r in hist if r["budget_tokens"] == max(x["budget_tokens"] for x in hist)]
        big_rows = [r for r in glm4 if r["stored"] >= 1000]
        if len(big_rows) >= 2:
            low, high = big_rows[0], big_rows[-1]
            grows = high["load_ms_p50"] > 2 * low["load_ms_p50"] + 0.5
            rows.append(
                [
                    "context read + trim does not grow with the stored count when only the "
                    "newest part fits",
                    f"load p50 {num(low['load_ms_p50'], 2)} ms at {low['stored']:,} vs "
                    f"{num(high['load_ms_p50'], 2)} ms at {high['stored']:,} stored",
                    verdict(not grows),
                ]
            )
    scale = s.get("scaleout") or {}
    if scale:
        rows.append(
            [
                "scale-out: throughput with 1 and 2 webhook replicas",
                scale.get("reason", "") if scale.get("status") != "ok" else "see below",
                verdict(None) if scale.get("status") != "ok" else "measured",
            ]
        )
    if not rows:
        return ""
    return "### Targets\n\n" + table(["target", "measured", ""], rows)


def _concurrency(section: dict[str, Any] | None) -> str:
    if not section:
        return "### Concurrency\n\nNot run yet."
    glm = section["glm"]
    rows = []
    for r in section["runs"]:
        rows.append(
            [
                num(r["chats"]),
                f"{r['completed']}/{r['chats']}",
                pair(r["first_visible_from_push_ms"]),
                pair(r["first_visible_beyond_glm_ms"]),
                pair(r["glm_first_token_ms"]),
                pair(r["last_chunk_to_final_ms"]),
                num(r["api_calls_per_answer"]),
                num(r["bot_cpu_ms_per_answer"]),
                num(r["bot_cpu_cores"], 2),
                num(r["peak_rss_mb"], 0),
                _lag(r),
                _redis(r),
                num(r["all_done_seconds"]),
                num(r.get("other_processes_cpu_cores"), 2),
            ]
        )
    header = [
        "private chats at once",
        "answers complete",
        "first text from push p50 / p99 (ms)",
        "first text beyond GLM first token p50 / p99 (ms)",
        "fake GLM first token p50 / p99 (ms)",
        "last GLM chunk → final message p50 / p99 (ms)³",
        "Bot API calls / answer",
        "bot CPU ms / answer",
        "bot CPU (cores)",
        "peak RSS (MB)",
        "loop lag p99 (ms)¹",
        "Redis commands / round trips per answer",
        "all done (s)",
        "other load (cores)²",
    ]
    notes = [
        "¹ Event-loop lag is read from the bot's `/metrics` histogram, whose buckets give "
        "upper bounds (≤); n/a where the bot exposed none.",
        "² CPU used by processes outside the benchmark during the run (this machine is shared).",
        "³ Final messages share Telegram's bot-wide budget of 30 messages/s, which the bot "
        "enforces itself: when many answers end together, their final messages queue (the "
        "draft already shows the whole text meanwhile).",
    ]
    return (
        f"### Concurrency: private chats, one question each at the same moment\n\n"
        f"Fake GLM: {glm['first_token_ms']:g} ms to the first token, "
        f"{glm['tokens_per_second']:g} tokens/s, {glm['tokens']} tokens. {measured(section)}\n\n"
        + table(header, rows)
        + "\n\n"
        + "\n".join(notes)
    )


def _limits(section: dict[str, Any] | None) -> str:
    if not section:
        return "### Under Telegram-like limits\n\nNot run yet."
    rows = []
    for r in section["runs"]:
        rows.append(
            [
                f"glmbot, private chats by {r['private_method']}",
                f"{r['completed_private']}/{r['private_chats']}",
                f"{r['completed_groups']}/{r['group_chats']}",
                num(r["rejected_429"]),
                num(r["all_done_seconds"]),
                pair(r["first_visible_from_push_ms"]),
                num(r["api_calls_per_answer"]),
            ]
        )
    rows.append(["baseline (brief)", "115/200", "–", "–", "–", "6,600 (median)", "–"])
    lim = section["limits"]
    return (
        "### Under Telegram-like limits\n\n"
        f"Fake Bot API enforcing {lim['per_chat_interval']:g} s per chat (burst 3), "
        f"{lim['group_per_minute']} messages/min per group, {lim['global_per_second']}/s "
        f"bot-wide, answering 429 with retry_after beyond. {measured(section)}\n\n"
        + table(
            [
                "bot",
                "private answers complete",
                "group answers complete",
                "429s issued by the fake",
                "all answers done (s)",
                "first text p50 / p99 (ms)",
                "Bot API calls / answer",
            ],
            rows,
        )
        + f"\n\nBaseline from the brief: {BASELINE}. With edits, each chat's first text is a "
        "`sendMessage` under the bot-wide budget of 30 messages/s, so 250 first messages need "
        "at least 8.3 s and the median first text cannot come much before 4 s; a draft is "
        "not a message and escapes that budget."
    )


def _overhead(section: dict[str, Any] | None) -> str:
    if not section:
        return "### Overhead at low concurrency\n\nNot run yet."
    rows = private_and_group_rows(
        section,
        (
            (
                "update_to_glm_request",
                "update handed to the bot (getUpdates) → GLM request arrives",
            ),
            ("first_visible_beyond_glm", "first GLM token → first visible text (draft / message)"),
            ("last_chunk_to_final", "last GLM chunk written → final message or edit arrives"),
            ("push_to_delivery", "update pushed → handed to the bot (long poll)"),
        ),
    )
    calls = []
    for key, label in (
        ("group_calls", "groups (edits), edit interval"),
        ("private_calls_edit_interval", "private (drafts), edit interval"),
        ("private_calls", "private (drafts), draft interval"),
    ):
        b = section.get(key) or {}
        if b.get("answers"):
            calls.append(
                [
                    label,
                    f"{num(b['interval'], 1)} s",
                    f"{b['within']}/{b['answers']}",
                    num(b["calls_mean"]),
                    num(b["bound_mean"]),
                    num(b["worst_excess"]),
                ]
            )
    return (
        f"### Overhead at low concurrency\n\n{section['chats']} chats (privates and groups "
        f"alternating), one question every {section['stagger_seconds']:g} s. "
        f"{other_load(section)}{measured(section)}\n\n"
        + table(
            PRIVATE_AND_GROUP_HEADER,
            rows,
        )
        + "\n\nIn groups the final edit may wait for the chat's next slot: the bot keeps one "
        "message or edit per second per chat, as Telegram asks."
        + "\n\n#### Bot API calls per answer vs 2 + ⌈stream seconds / interval⌉ + splits\n\n"
        + table(
            ["answers", "interval", "within bound", "mean calls", "mean bound", "worst excess"],
            calls,
        )
    )


def _redis_section(s: dict[str, Any]) -> str:
    runs = []
    for name in ("concurrency", "overhead", "reasoning", "limits"):
        section = s.get(name)
        if not section:
            continue
        for r in section.get("runs", [section]):
            label = f"{name}: {r['chats']} chats"
            if r.get("private_method"):
                label += f" ({r['private_method']})"
            runs.append((label, r))
    if not runs:
        return ""
    rows = []
    for label, r in runs:
        redis = r.get("redis_per_answer") or {}
        client = ", ".join(
            f"{k} {v:g}" for k, v in sorted((redis.get("client_commands") or {}).items())
        )
        script = ", ".join(
            f"{k} {v:g}" for k, v in sorted((redis.get("script_commands") or {}).items())
        )
        rows.append(
            [
                label,
                num(redis.get("commands")),
                num(redis.get("round_trips"), 2),
                num(redis.get("connection_setup_round_trips"), 2),
                num(redis.get("periodic_round_trips"), 2),
                client,
                script,
            ]
        )
    return "### Redis cost per answer\n\n" + table(
        [
            "run",
            "commands (commandstats)",
            "round trips",
            "of which opening connections",
            "of which periodic (heartbeats, sweeps)",
            "sent by the bot (per answer)",
            "run inside Lua (per answer)",
        ],
        rows,
    )


def _history(section: dict[str, Any] | None) -> str:
    if not section:
        return "### History size\n\nNot run yet."
    rows = [
        [
            num(r["stored"]),
            num(r["budget_tokens"]),
            num(r["messages_read"]),
            num(r["messages_kept"]),
            f"{num(r['load_ms_p50'], 2)} / {num(r['load_ms_p99'], 2)}",
            f"{num(r['trim_ms_p50'], 2)} / {num(r['trim_ms_p99'], 2)}",
        ]
        for r in section["rows"]
    ]
    return (
        "### History size: reading and trimming one conversation's context\n\n"
        f"Messages of about 200 tokens each. {measured(section)}\n\n"
        + table(
            [
                "stored messages",
                "budget (tokens)",
                "messages read",
                "messages sent",
                "load_context p50 / p99 (ms)",
                "build_prompt p50 / p99 (ms)",
            ],
            rows,
        )
    )


def _formatting(section: dict[str, Any] | None) -> str:
    if not section:
        return ""
    rows = [
        [r["kind"], num(r["chars"]), num(r["ms_p50"], 2), num(r["us_per_char"], 2)]
        for r in section["rows"]
    ]
    return (
        "### Formatting: CPU of rendering one draft or edit\n\n"
        "Every draft and edit renders the answer so far (`PartTracker.parts`). The fake GLM's "
        "answers are plain words, the cheapest case; Markdown costs more per character. "
        f"{measured(section)}\n\n"
        + table(["text", "characters so far", "CPU per render p50 (ms)", "µs per character"], rows)
    )


def _scaleout(section: dict[str, Any] | None) -> str:
    if not section:
        return "### Scale-out\n\nNot run yet."
    if section.get("status") != "ok":
        return "### Scale-out: webhook replicas\n\n" + table(
            ["replicas", "answers / s", "status"],
            [
                ["1", "–", f"TODO: {section.get('reason', '')}"],
                ["2", "–", f"TODO: {section.get('reason', '')}"],
            ],
        )
    rows = [
        [
            str(r["replicas"]),
            f"{r['completed']}/{r['chats']}",
            num(r["answers_per_second"]),
            num(r["all_done_seconds"]),
            pair(r["first_visible_beyond_glm_ms"]),
            pair(r["update_to_glm_request_ms"]),
            num(r["bot_cpu_cores"], 2),
            num(r["peak_rss_mb"], 0),
            num(r.get("other_processes_cpu_cores"), 2),
        ]
        for r in section["runs"]
    ]
    chats = section["runs"][0]["chats"] if section["runs"] else 0
    return (
        "### Scale-out: webhook replicas sharing one Redis\n\n"
        f"{chats} private chats at once; the harness posts the updates to the replicas' "
        f"webhooks in turn, as Telegram would to a load balancer. {measured(section)}\n\n"
        + table(
            [
                "replicas",
                "answers complete",
                "answers / s",
                "all done (s)",
                "first text beyond GLM first token p50 / p99 (ms)",
                "update → GLM request p50 / p99 (ms)",
                "bot CPU, all replicas (cores)",
                "peak RSS per replica (MB)",
                "other load (cores)",
            ],
            rows,
        )
    )
