"""Turn the raw runs into medians, same-run ratios, target verdicts and the Markdown tables."""

import math
import statistics
from pathlib import Path

from bench.figures import CELERY, OURS, PLAIN, POLL_S

STACKS = (OURS, CELERY, PLAIN)
# Maps of counts whose keys differ between runs: shown from the raw runs, not as medians.
COUNT_MAPS = {"statuses", "errors", "failures"}
HTTP = {
    "status": "`GET /status/<id>` of a finished job",
    "post": "`POST /longtask`, waiting cap out of reach, workers stopped",
    "post_default": "`POST /longtask`, every default (ours: the waiting cap), one worker draining",
}
PUSH = {"push_1": "1 event stream", "push_100": "100 event streams"}
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
    tops, bottoms = raw.get((figure, top), []), raw.get((figure, bottom), [])
    ratios = []
    for a, b in zip(tops, bottoms, strict=False):
        a, b = (a.get(field), b.get(field)) if field else (a, b)
        if a and b:
            ratios.append(a / b)
    return round(statistics.median(ratios), 2) if ratios else None


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
    for count in (1, 2, 4):
        for kind in ("fork", "simple"):
            ratios[f"short_{kind}_{count}_ours_over_plain"] = _ratio_runs(
                raw, f"short_{kind}_{count}", None, OURS, PLAIN
            )
            tops = raw.get((f"short_{kind}_{count}", OURS), [])
            bottoms = raw.get((f"short_prefork_{count}", CELERY), [])
            values = [a / b for a, b in zip(tops, bottoms, strict=False) if a and b]
            ratios[f"short_{kind}_{count}_ours_over_tutorial"] = (
                round(statistics.median(values), 2) if values else None
            )
    summary["ratios"] = ratios
    return summary


def _get(summary: dict, figure: str, stack: str, field: str | None = None):
    value = summary.get(figure, {}).get(stack)
    if field is not None and isinstance(value, dict):
        value = value.get(field)
    return value


def _fmt(value, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        value = f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"
    elif isinstance(value, int):
        value = f"{value:,}"
    return f"{value}{unit}"


def _pair(summary: dict, figure: str, stack: str, a: str, b: str, unit: str = " ms") -> str:
    return f"{_fmt(_get(summary, figure, stack, a))} / {_fmt(_get(summary, figure, stack, b))}{unit}"


def _counts(raw: dict, figure: str, stack: str, field: str) -> str:
    """The union over runs of a count map (statuses, socket errors, failure reasons), as totals."""
    totals: dict[str, int] = {}
    for run in raw.get(f"{figure}|{stack}", []):
        for key, count in (run.get(field) or {}).items():
            totals[key] = totals.get(key, 0) + count
    shown = [f"{key}: {_fmt(count)}" for key, count in sorted(totals.items()) if count]
    return ", ".join(shown) or "none"


def targets(results: dict) -> list[tuple[str, str, bool | None]]:
    """Issue 12's targets: (target, what was measured, met?); None when not measured."""
    s, r, rows = results["summary"], results["summary"]["ratios"], []
    for figure, name in (("status", "`GET /status/<id>`"), ("post", "`POST /longtask`, cap out of reach")):
        ratio = r.get(f"{figure}_ok_per_s_ours_over_tutorial")
        ours, theirs = _get(s, figure, OURS, "p99_ms"), _get(s, figure, CELERY, "p99_ms")
        measured = f"x{_fmt(ratio)}; p99 {_fmt(ours)} ms against {_fmt(theirs)} ms"
        met = None if None in (ratio, ours, theirs) else ratio >= RATE_TARGET and ours <= theirs
        rows.append((f"{name}: >= {RATE_TARGET}x the tutorial's successes/s, p99 no higher", measured, met))
    asked, scale = results.get("streams"), s.get("push_scale", {}).get(OURS) or {}
    p95 = scale.get("p95_ms")
    measured = (
        f"{_fmt(scale.get('opened'))} of {_fmt(asked)} opened, {_fmt(scale.get('complete_streams'))} got "
        f"every update; p95 {_fmt(p95)} ms"
    )
    met = None if p95 is None else p95 <= PUSH_P95_TARGET_MS and scale.get("complete_streams") == asked
    rows.append(
        (
            f"push p95 <= {PUSH_P95_TARGET_MS:g} ms, every update to each of {_fmt(asked)} streams",
            measured,
            met,
        )
    )
    return rows


def _http_lines(results: dict) -> list[str]:
    s, raw, r = results["summary"], results["raw"], results["summary"]["ratios"]
    lines = [
        f"| HTTP, wrk -t{results['wrk']['threads']} -c{results['wrk']['connections']} "
        f"-d{results['wrk']['duration_s']:g}s | {OURS} | {CELERY} | ratio |",
        "| --- | --- | --- | --- |",
    ]
    for figure, name in HTTP.items():
        success = 200 if figure == "status" else 202
        lines.append(
            f"| {name}: {success} answers/s (other answers/s) | "
            + " | ".join(
                f"{_fmt(_get(s, figure, st, 'ok_per_s'))} ({_fmt(_get(s, figure, st, 'refused_per_s'))})"
                for st in (OURS, CELERY)
            )
            + f" | x{_fmt(r.get(f'{figure}_ok_per_s_ours_over_tutorial'))} |"
        )
        lines.append(
            "| latency p50 / p90 / p99 of the answers wrk counted | "
            + " | ".join(
                f"{_pair(s, figure, st, 'p50_ms', 'p90_ms', '')} / "
                f"{_fmt(_get(s, figure, st, 'p99_ms'))} ms ({_get(s, figure, st, 'latency_of')})"
                for st in (OURS, CELERY)
            )
            + f" | p99 x{_fmt(r.get(f'{figure}_p99_ours_over_tutorial'))} |"
        )
        lines.append(
            "| answers by status; socket errors (all runs) | "
            + " | ".join(
                f"{_counts(raw, figure, st, 'statuses')}; {_counts(raw, figure, st, 'errors')}"
                for st in (OURS, CELERY)
            )
            + " | |"
        )
    drained = " | ".join(
        f"{_fmt(_get(s, 'post_default', st, 'drained_per_s'))} jobs/s taken; "
        f"{_fmt(_get(s, 'post_default', st, 'waiting_at_end'))} waiting at the end"
        for st in (OURS, CELERY)
    )
    lines.append(f"| the draining worker during that run | {drained} | |")
    return lines


def _push_lines(results: dict) -> list[str]:
    s, raw = results["summary"], results["raw"]
    lines = [
        "| client (one web process) | streams open / asked | updates seen per stream (min) / saved "
        "| p50 | p95 | p99 | max |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    names = {**PUSH, "push_scale": f"{_fmt(results.get('streams'))} event streams"}
    for figure, name in names.items():
        found = _get(s, figure, OURS) or {}
        asked = results.get("streams") if figure == "push_scale" else int(figure.split("_")[1])
        errors = [run["error"] for run in raw.get(f"{figure}|{OURS}", []) if "error" in run]
        if not found.get("updates_saved"):
            lines.append(f"| {name} | failed: {errors[0] if errors else 'no figures'} | | | | | |")
            continue
        lines.append(
            f"| {name} | {_fmt(found.get('opened'))} / {_fmt(asked)} | "
            f"{_fmt(found.get('seen_min'))} / {_fmt(found.get('updates_saved'))} | "
            + " | ".join(_fmt(found.get(k), " ms") for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms"))
            + " |"
        )
    poll = _get(s, "push_1", OURS, "poll_2s") or {}
    saved = _get(s, "push_1", OURS, "updates_saved")
    lines.append(
        f"| polling `/status` every {POLL_S:g} s (the tutorial's page; until it shows the update "
        f"or a newer one) | 1 / 1 | {_fmt(poll.get('seen'))} / {_fmt(saved)} | "
        + " | ".join(_fmt(poll.get(k), " ms") for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms"))
        + " |"
    )
    return lines


def _scale_lines(results: dict) -> list[str]:
    s, raw = results["summary"], results["raw"]
    rows = []
    for figure in ("push_1", "push_100", "push_scale"):
        f = _get(s, figure, OURS) or {}
        if not f.get("updates_saved"):
            continue
        rows.append(
            f"| {_fmt(f.get('streams'))} | {_fmt(f.get('opened'))} | {_fmt(f.get('failed'))} "
            f"({_counts(raw, figure, OURS, 'failures')}) | {_fmt(f.get('complete_streams'))} | "
            f"{_fmt(f.get('open_s'), ' s')} | {_fmt(f.get('rss_before_mib'))} -> "
            f"{_fmt(f.get('rss_open_mib'))} MiB | {_fmt(f.get('kib_per_stream'), ' KiB')} | "
            f"{_fmt(f.get('redis_connections_open'))} | {_fmt(f.get('web_open_files_limit'))} | "
            f"{_fmt(f.get('client_cpu_s'), ' s')} |"
        )
    return [
        "| streams asked | opened | failed (why, all runs) | got every update and the end | time to open "
        "| web RSS before -> with them open | RSS per open stream | web's Redis connections with them open "
        "| web's open-file limit (set by the bench) | client CPU while they ran |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
    ]


def _rows(summary: dict, events: bool) -> list[tuple[str, ...]]:
    ours_progress = "event stream" if events else f"/status polled every {POLL_S:g} s (no event stream yet)"
    r = summary["ratios"]
    rows = [
        (
            f"Progress latency p50 / p95 (ours: {ours_progress}; tutorial: polled every {POLL_S:g} s)",
            _pair(summary, "progress", OURS, "p50_ms", "p95_ms"),
            _pair(summary, "progress", CELERY, "p50_ms", "p95_ms"),
            "n/a (no web layer)",
            f"p95 x{_fmt(r['progress_p95_ours_over_tutorial'])}",
        ),
        (
            "Updates a client never sees (job saving every 0.25 s)",
            _fmt(_get(summary, "progress", OURS, "unseen_share")),
            _fmt(_get(summary, "progress", CELERY, "unseen_share")),
            "n/a",
            "",
        ),
        (
            "Start latency p50 / p95 (request to first progress save, idle worker)",
            *(_pair(summary, "start", stack, "p50_ms", "p95_ms") for stack in STACKS),
            f"p95 x{_fmt(r['start_p95_ours_over_tutorial'])}",
        ),
    ]
    for n in (1, 2, 4):
        fork, simple = f"short_fork_{n}", f"short_simple_{n}"
        rows.append(
            (
                f"Short jobs/s, {n} worker process(es): RQ fork / RQ SimpleWorker; Celery prefork -c {n}",
                f"{_fmt(_get(summary, fork, OURS))} / {_fmt(_get(summary, simple, OURS))}",
                _fmt(_get(summary, f"short_prefork_{n}", CELERY)),
                f"{_fmt(_get(summary, fork, PLAIN))} / {_fmt(_get(summary, simple, PLAIN))}",
                f"fork: x{_fmt(r[f'short_fork_{n}_ours_over_tutorial'])} of tutorial, "
                f"x{_fmt(r[f'short_fork_{n}_ours_over_plain'])} of plain",
            )
        )
    rows += [
        (
            "Redis commands per 1-step job, start to end (ours and tutorial: 2 progress saves included)",
            _fmt(_get(summary, "cost", OURS, "per_1_step_job")),
            _fmt(_get(summary, "cost", CELERY, "per_1_step_job")),
            _fmt(_get(summary, "cost", PLAIN, "per_1_step_job")) + " (no-op job)",
            "",
        ),
        (
            "Redis commands per progress update",
            _fmt(_get(summary, "cost", OURS, "per_progress_update")),
            _fmt(_get(summary, "cost", CELERY, "per_progress_update")),
            "n/a",
            "",
        ),
        (
            "Redis commands per GET /status (finished job) / per POST /longtask",
            _pair(summary, "request_cost", OURS, "per_status_get", "per_post", ""),
            _pair(summary, "request_cost", CELERY, "per_status_get", "per_post", ""),
            "n/a",
            "",
        ),
    ]
    rows.append(
        (
            "Redis connections of the web, after the 64-connection start load",
            _fmt(_get(summary, "web_connections_idle", OURS)),
            f"{_fmt(_get(summary, 'web_connections_idle', CELERY))} (2 processes)",
            "n/a",
            "",
        )
    )
    rows.append(
        (
            "Peak RSS: web process / worker process",
            f"{_fmt(_get(summary, 'rss_web', OURS))} / {_fmt(_get(summary, 'rss_worker', OURS))} MiB",
            f"{_fmt(_get(summary, 'rss_web', CELERY))} / {_fmt(_get(summary, 'rss_worker', CELERY))} MiB",
            f"- / {_fmt(_get(summary, 'rss_worker', PLAIN))} MiB",
            "",
        )
    )
    return rows


def markdown(results: dict) -> str:
    """The README's tables: the machine, the targets, HTTP, push, streams at scale, the rest."""
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
    lines += ["| target (issue 12) | measured | met |", "| --- | --- | --- |"]
    verdicts = {True: "yes", False: "**no**", None: "not measured"}
    lines += [f"| {name} | {measured} | {verdicts[met]} |" for name, measured, met in targets(results)]
    lines += ["", *_http_lines(results), "", "Push latency: from the worker's save to the client.", ""]
    lines += [*_push_lines(results), "", "Open event streams on one web process.", "", *_scale_lines(results)]
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
    lines += ["| " + " | ".join(row) + " |" for row in _rows(results["summary"], results.get("event_stream"))]
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
            page = f"{_fmt(entry.get('dashboard_ms'))} ms" if dash else "not mounted at /rq in this build"
            if entry.get("dashboard_error"):
                page = f"failed: {entry['dashboard_error']}"
            lines.append(f"| {int(level):,} | {_fmt(entry['status_p50_ms'])} ms | {page} |")
    lines += ["", "![benchmark chart](results.png)", ""]
    return "\n".join(lines)


README_START = "<!-- bench:results:start (make bench rewrites this part) -->"
README_END = "<!-- bench:results:end -->"


def update_readme(readme: Path, results_md: str) -> bool:
    """Replace the README's results block with the new table; False when the markers are missing."""
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return False
    body = results_md.split("\n", 2)[2].replace("](results.png)", "](bench/results.png)").strip()
    head, _, rest = text.partition(README_START)
    _, _, tail = rest.partition(README_END)
    readme.write_text(f"{head}{README_START}\n{body}\n{README_END}{tail}")
    return True
