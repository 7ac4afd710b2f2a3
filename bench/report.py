"""Turn the raw runs into medians, same-run ratios, target verdicts and the Markdown tables."""

import math
import os
import statistics
from pathlib import Path

from bench import drain, tables
from bench.figures import CELERY, OURS, PLAIN, POLL_S
from bench.tables import HTTP, fmt, get

# Maps of counts whose keys differ between runs: shown from the raw runs, not as medians.
COUNT_MAPS = {"statuses", "errors", "failures"}
# Issue 12's targets, measured in the same run.
RATE_TARGET = 1.5
PUSH_P95_TARGET_MS = 50.0


def _median(values: list) -> object:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return None
    if isinstance(values[0], dict):
        keys = {key for v in values for key in v if key not in COUNT_MAPS}
        return {key: _median([v.get(key) for v in values]) for key in sorted(keys)}
    if isinstance(values[0], int | float):
        return round(statistics.median(values), 3)
    return " / ".join(sorted({str(v) for v in values}))


def _ratio_runs(raw: dict, figure: str, field: str | None, top: str, bottom: str) -> float | None:
    """Median of per-run ratios of one figure, stack `top` over stack `bottom`."""
    return _ratio_pairs(raw, (figure, top), (figure, bottom), field)


def summarize(raw: dict) -> dict:
    """Median of every figure per stack, plus per-run ratios (ours over the other stack)."""
    summary: dict = {}
    for (figure, stack), values in raw.items():
        summary.setdefault(figure, {})[stack] = _median(values)
    ratios = {
        "progress_p95_ours_over_tutorial": _ratio_runs(raw, "progress", "p95_ms", OURS, CELERY),
        "start_p95_ours_over_tutorial": _ratio_runs(raw, "start", "p95_ms", OURS, CELERY),
    }
    for figure in HTTP:
        ratios[f"{figure}_ok_per_s_ours_over_tutorial"] = _ratio_runs(raw, figure, "ok_per_s", OURS, CELERY)
        ratios[f"{figure}_p99_ours_over_tutorial"] = _ratio_runs(raw, figure, "p99_ms", OURS, CELERY)
    per_run = drain_ratios(raw)
    ratios.update(
        {key: round(statistics.median(values), 2) if values else None for key, values in per_run.items()}
    )
    summary["per_run_ratios"] = per_run
    summary["ratios"] = ratios
    return summary


def drain_ratios(raw: dict) -> dict[str, list[float]]:
    """Per-run ratios of the short jobs' drain rates: the Procfile's worker over Celery's prefork
    pool (our 1-step demo job against the tutorial's 1-step task; no-op against no-op) and over
    RQ's own forking Worker and SimpleWorker (the same jobs), for 1, 2 and 4 processes."""
    per_run = {}
    for n in drain.COUNTS:
        per_run[f"drain_{n}_ours_over_tutorial"] = _ratio_list(
            raw, (f"drain_warm_{n}", OURS), (f"drain_prefork_task_{n}", CELERY), drain.FIELD
        )
        per_run[f"drain_{n}_noop_over_tutorial"] = _ratio_list(
            raw, (f"drain_warm_{n}", PLAIN), (f"drain_prefork_{n}", CELERY), drain.FIELD
        )
        for other in ("fork", "simple"):
            for stack, jobs in ((OURS, "1step"), (PLAIN, "noop")):
                per_run[f"drain_{n}_{jobs}_warm_over_{other}"] = _ratio_list(
                    raw, (f"drain_warm_{n}", stack), (f"drain_{other}_{n}", stack), drain.FIELD
                )
    return per_run


def _ratio_list(
    raw: dict, top: tuple[str, str], bottom: tuple[str, str], field: str | None = None
) -> list[float]:
    """Per-run ratios of two (figure, stack) series, runs paired in order; `field` picks a value
    from each run's dict. A run missing either value (a failed sample) gives no ratio."""
    ratios = []
    for a, b in zip(raw.get(top, []), raw.get(bottom, []), strict=False):
        a, b = (a.get(field), b.get(field)) if field else (a, b)
        if a and b:
            ratios.append(round(a / b, 2))
    return ratios


def _ratio_pairs(
    raw: dict, top: tuple[str, str], bottom: tuple[str, str], field: str | None = None
) -> float | None:
    """Median of per-run ratios of two (figure, stack) series (`_ratio_list`)."""
    ratios = _ratio_list(raw, top, bottom, field)
    return round(statistics.median(ratios), 2) if ratios else None


def targets(results: dict) -> list[tuple[str, str, bool | None]]:
    """Issue 12's targets and issue 19's drain rate: (target, what was measured, met?).

    met is None when the figure was not measured.
    """
    s, r, rows = results["summary"], results["summary"]["ratios"], []
    for figure, name in (("status", "`GET /status/<id>`"), ("post", "`POST /longtask`, cap out of reach")):
        ratio = r.get(f"{figure}_ok_per_s_ours_over_tutorial")
        ours, theirs = get(s, figure, OURS, "p99_ms"), get(s, figure, CELERY, "p99_ms")
        measured = f"x{fmt(ratio)}; p99 {fmt(ours)} ms against {fmt(theirs)} ms"
        met = None if None in (ratio, ours, theirs) else ratio >= RATE_TARGET and ours <= theirs
        rows.append((f"{name}: >= {RATE_TARGET}x the tutorial's successes/s, p99 no higher", measured, met))
    asked, scale = results.get("streams"), s.get("push_scale", {}).get(OURS) or {}
    p95 = scale.get("p95_ms")
    measured = (
        f"{fmt(scale.get('opened'))} of {fmt(asked)} opened, {fmt(scale.get('complete_streams'))} got "
        f"every update; p95 {fmt(p95)} ms"
    )
    met = None if p95 is None else p95 <= PUSH_P95_TARGET_MS and scale.get("complete_streams") == asked
    rows.append(
        (
            f"push p95 <= {PUSH_P95_TARGET_MS:g} ms, every update to each of {fmt(asked)} streams",
            measured,
            met,
        )
    )
    for what, figure, stack, peer, key in (
        (
            "our 1-step demo job against the tutorial's 1-step task",
            "drain_warm_1",
            OURS,
            "drain_prefork_task_1",
            "drain_1_ours_over_tutorial",
        ),
        ("no-op jobs", "drain_warm_1", PLAIN, "drain_prefork_1", "drain_1_noop_over_tutorial"),
    ):
        ratio = r.get(key)
        ours, theirs = get(s, figure, stack, drain.FIELD), get(s, peer, CELERY, drain.FIELD)
        per_run = " / ".join(fmt(v) for v in s.get("per_run_ratios", {}).get(key, []))
        rows.append(
            (
                f"(issue 19) short jobs drained/s, the Procfile's worker, 1 process, {what}: "
                ">= Celery prefork -c 1",
                f"{fmt(ours)} against {fmt(theirs)} jobs/s (x{fmt(ratio)}; per run {per_run or 'n/a'})",
                None if ratio is None else ratio >= 1.0,
            )
        )
    return rows


def markdown(results: dict) -> str:
    """The benchmark page's tables: the machine, the targets, HTTP, push, streams at scale, the rest."""
    m = results["machine"]
    versions = ", ".join(f"{name} {v}" for name, v in m["versions"].items())
    lines = [
        "# Benchmark results",
        "",
        f"{m['date']}; {m['nproc']} CPUs ({m['cpu']}), {m['os']}; Python {m['python']}; {versions}; "
        f"wrk {m.get('wrk', 'n/a')}; Redis server: {m['redis_server']}; load average at start "
        f"{m['load_average_at_start']}. Medians of {results['runs']} runs; ratios are medians of per-run "
        f"ratios (ours / other). Whole run: {results['wall_s']:.0f} s.",
        "",
    ]
    if results.get("note"):
        lines += [f"**Note:** {results['note']}", ""]
    lines += ["| target (issue 12 unless named) | measured | met |", "| --- | --- | --- |"]
    verdicts = {True: "yes", False: "**no**", None: "not measured"}
    lines += [f"| {name} | {measured} | {verdicts[met]} |" for name, measured, met in targets(results)]
    lines += [
        "",
        *tables.http_lines(results),
        "",
        *drain.markdown_lines(results),
        "",
        "Push latency: from the worker's save to the client.",
        "",
    ]
    lines += [
        *tables.push_lines(results),
        "",
        "Open event streams on one web process.",
        "",
        *tables.scale_lines(results),
    ]
    if not results.get("event_stream"):
        lines += [
            "",
            "**No event stream route** (`GET /status/<id>/events`) in this build: our progress latency is "
            f"measured by polling `/status` every {POLL_S:g} s like the tutorial's page.",
        ]
    lines += [
        "",
        f"| other figures | {OURS} | {CELERY} | {PLAIN} | ratio |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        "| " + " | ".join(row) + " |" for row in tables.rows(results["summary"], results.get("event_stream"))
    ]
    growth = results.get("growth", {})
    if growth.get("levels"):
        dash = growth.get("dashboard")
        lines += [
            "",
            "Growth: finished jobs kept in Redis (ours).",
            "",
            "| finished jobs | GET /status p50 | rq-dashboard finished-jobs page (HTML + 2 JSON) |",
            "| --- | --- | --- |",
        ]
        for level, entry in growth["levels"].items():
            page = f"{fmt(entry.get('dashboard_ms'))} ms" if dash else "not mounted at /rq in this build"
            if entry.get("dashboard_error"):
                page = f"failed: {entry['dashboard_error']}"
            lines.append(f"| {int(level):,} | {fmt(entry['status_p50_ms'])} ms | {page} |")
    lines += ["", "![benchmark chart](results.png)", ""]
    return "\n".join(lines)


PAGE_START = "<!-- bench:results:start (make bench rewrites this part) -->"
PAGE_END = "<!-- bench:results:end -->"


def update_page(page: Path, results_md: str) -> bool:
    """Replace the results block of `page` (docs/benchmarks.md) with the new tables; False when the
    markers are missing. The chart is linked from the page's own folder."""
    text = page.read_text()
    if PAGE_START not in text or PAGE_END not in text:
        return False
    chart = os.path.relpath(Path(__file__).resolve().parent / "results.png", page.resolve().parent)
    body = results_md.split("\n", 2)[2].replace("](results.png)", f"]({chart})").strip()
    head, _, rest = text.partition(PAGE_START)
    _, _, tail = rest.partition(PAGE_END)
    page.write_text(f"{head}{PAGE_START}\n{body}\n{PAGE_END}{tail}")
    return True
