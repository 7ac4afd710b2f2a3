"""The Markdown tables of the benchmark, from the summarized figures (one builder per table)."""

from bench.figures import CELERY, OURS, PLAIN, POLL_S

STACKS = (OURS, CELERY, PLAIN)
HTTP = {
    "status": "`GET /status/<id>` of a finished job",
    "post": "`POST /longtask`, waiting cap out of reach, workers stopped",
    "post_default": "`POST /longtask`, every default (ours: the waiting cap), one worker draining",
}
# The RQ worker kinds of the short-job rows, in the order the cells list them.
SHORT_KINDS = ("warm", "fork", "simple")
PUSH = {"push_1": "1 event stream", "push_100": "100 event streams"}


def get(summary: dict, figure: str, stack: str, field: str | None = None):
    value = summary.get(figure, {}).get(stack)
    if field is not None and isinstance(value, dict):
        value = value.get(field)
    return value


def fmt(value, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        value = f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"
    elif isinstance(value, int):
        value = f"{value:,}"
    return f"{value}{unit}"


def pair(summary: dict, figure: str, stack: str, a: str, b: str, unit: str = " ms") -> str:
    return f"{fmt(get(summary, figure, stack, a))} / {fmt(get(summary, figure, stack, b))}{unit}"


def counts(raw: dict, figure: str, stack: str, field: str) -> str:
    """The union over runs of a count map (statuses, socket errors, failure reasons), as totals."""
    totals: dict[str, int] = {}
    for run in raw.get(f"{figure}|{stack}", []):
        for key, count in (run.get(field) or {}).items():
            totals[key] = totals.get(key, 0) + count
    shown = [f"{key}: {fmt(count)}" for key, count in sorted(totals.items()) if count]
    return ", ".join(shown) or "none"


def http_lines(results: dict) -> list[str]:
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
                f"{fmt(get(s, figure, st, 'ok_per_s'))} ({fmt(get(s, figure, st, 'refused_per_s'))})"
                for st in (OURS, CELERY)
            )
            + f" | x{fmt(r.get(f'{figure}_ok_per_s_ours_over_tutorial'))} |"
        )
        lines.append(
            "| latency p50 / p90 / p99 of the answers wrk counted | "
            + " | ".join(
                f"{pair(s, figure, st, 'p50_ms', 'p90_ms', '')} / "
                f"{fmt(get(s, figure, st, 'p99_ms'))} ms ({get(s, figure, st, 'latency_of')})"
                for st in (OURS, CELERY)
            )
            + f" | p99 x{fmt(r.get(f'{figure}_p99_ours_over_tutorial'))} |"
        )
        lines.append(
            "| answers by status; socket errors (all runs) | "
            + " | ".join(
                f"{counts(raw, figure, st, 'statuses')}; {counts(raw, figure, st, 'errors')}"
                for st in (OURS, CELERY)
            )
            + " | |"
        )
    drained = " | ".join(
        f"{fmt(get(s, 'post_default', st, 'drained_per_s'))} jobs/s taken; "
        f"{fmt(get(s, 'post_default', st, 'waiting_at_end'))} waiting at the end"
        for st in (OURS, CELERY)
    )
    lines.append(f"| its one worker during that run (posted while it ran: not a drain rate) | {drained} | |")
    return [*lines, "", default_cap_note(results)]


def default_cap_note(results: dict) -> str:
    """Why our default-settings start rate differs from the one with the cap out of reach."""
    cap = results.get("default_queue_max_jobs")
    runs = results["raw"].get(f"post_default|{OURS}", [])
    filled = [run for run in runs if run.get("refused")]
    head = f"With every default, our queue holds at most {fmt(cap)} waiting jobs (`QUEUE_MAX_JOBS`)"
    if not filled:
        return f"{head}; the cap was not reached within any run. The tutorial has no cap."
    rates = ", ".join(
        f"{fmt(run.get('ok_per_s'))} accepted/s while its one worker took {fmt(run.get('drained_per_s'))} "
        f"jobs/s, {fmt(run.get('refused_per_s'))}/s answered 503"
        for run in filled
    )
    return (
        f"{head}. It filled in {len(filled)} of {len(runs)} runs ({rates}): once it is full, a start "
        "is accepted only as the worker makes room, and the rest are answered 503 with Retry-After. "
        "The tutorial has no cap: its broker list grows without bound."
    )


def push_lines(results: dict) -> list[str]:
    s, raw = results["summary"], results["raw"]
    lines = [
        "| client (one web process) | streams open / asked | updates seen per stream (min) / saved "
        "| p50 | p95 | p99 | max |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    names = {**PUSH, "push_scale": f"{fmt(results.get('streams'))} event streams"}
    for figure, name in names.items():
        found = get(s, figure, OURS) or {}
        asked = results.get("streams") if figure == "push_scale" else int(figure.split("_")[1])
        errors = [run["error"] for run in raw.get(f"{figure}|{OURS}", []) if "error" in run]
        if not found.get("updates_saved"):
            lines.append(f"| {name} | failed: {errors[0] if errors else 'no figures'} | | | | | |")
            continue
        lines.append(
            f"| {name} | {fmt(found.get('opened'))} / {fmt(asked)} | "
            f"{fmt(found.get('seen_min'))} / {fmt(found.get('updates_saved'))} | "
            + " | ".join(fmt(found.get(k), " ms") for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms"))
            + " |"
        )
    poll = get(s, "push_1", OURS, "poll_2s") or {}
    saved = get(s, "push_1", OURS, "updates_saved")
    lines.append(
        f"| polling `/status` every {POLL_S:g} s (the tutorial's page; until it shows the update "
        f"or a newer one) | 1 / 1 | {fmt(poll.get('seen'))} / {fmt(saved)} | "
        + " | ".join(fmt(poll.get(k), " ms") for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms"))
        + " |"
    )
    return lines


def scale_lines(results: dict) -> list[str]:
    s, raw = results["summary"], results["raw"]
    rows = []
    for figure in ("push_1", "push_100", "push_scale"):
        f = get(s, figure, OURS) or {}
        if not f.get("updates_saved"):
            continue
        # Below 100 streams the difference is page-sized noise, not a per-stream cost.
        per_stream = fmt(f.get("kib_per_stream"), " KiB") if (f.get("opened") or 0) >= 100 else "n/a"
        rows.append(
            f"| {fmt(f.get('streams'))} | {fmt(f.get('opened'))} | {fmt(f.get('failed'))} "
            f"({counts(raw, figure, OURS, 'failures')}) | {fmt(f.get('complete_streams'))} | "
            f"{fmt(f.get('open_s'), ' s')} | {fmt(f.get('rss_before_mib'))} -> "
            f"{fmt(f.get('rss_open_mib'))} MiB | {per_stream} | "
            f"{fmt(f.get('redis_connections_open'))} | {fmt(f.get('web_open_files_limit'))} | "
            f"{fmt(f.get('client_cpu_s'), ' s')} |"
        )
    return [
        "| streams asked | opened | failed (why: totals over the runs) | got every update and the end "
        "| time to open | web RSS before -> with them open | RSS per open stream "
        "| web's Redis connections with them open | web's open-file limit (set by the bench) "
        "| client CPU while they ran |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
    ]


def rows(summary: dict, events: bool) -> list[tuple[str, ...]]:
    ours_progress = "event stream" if events else f"/status polled every {POLL_S:g} s (no event stream yet)"
    r = summary["ratios"]
    rows = [
        (
            f"Progress latency p50 / p95 (ours: {ours_progress}; tutorial: polled every {POLL_S:g} s)",
            pair(summary, "progress", OURS, "p50_ms", "p95_ms"),
            pair(summary, "progress", CELERY, "p50_ms", "p95_ms"),
            "n/a (no web layer)",
            f"p95 x{fmt(r['progress_p95_ours_over_tutorial'])}",
        ),
        (
            "Updates a client never sees (job saving every 0.25 s)",
            fmt(get(summary, "progress", OURS, "unseen_share")),
            fmt(get(summary, "progress", CELERY, "unseen_share")),
            "n/a",
            "",
        ),
        (
            "Start latency p50 / p95 (request to first progress save, idle worker)",
            *(pair(summary, "start", stack, "p50_ms", "p95_ms") for stack in STACKS),
            f"p95 x{fmt(r['start_p95_ours_over_tutorial'])}",
        ),
    ]
    rows.append(
        (
            "Short-job start latency p50 / p95, enqueue to started, 1 idle process: "
            "warm horse; RQ fork; RQ SimpleWorker; Celery prefork -c 1",
            "; ".join(pair(summary, f"short_start_{kind}", OURS, "p50_ms", "p95_ms") for kind in SHORT_KINDS),
            pair(summary, "short_start_prefork", CELERY, "p50_ms", "p95_ms"),
            "; ".join(
                pair(summary, f"short_start_{kind}", PLAIN, "p50_ms", "p95_ms") for kind in SHORT_KINDS
            ),
            "",
        )
    )
    rows.append(
        (
            "Redis commands per short job, enqueue to end, 1 process: warm horse / RQ fork / RQ SimpleWorker",
            " / ".join(fmt(get(summary, f"short_cost_{kind}", OURS)) for kind in SHORT_KINDS),
            fmt(get(summary, "short_cost_prefork", CELERY)) + " (prefork -c 1)",
            " / ".join(fmt(get(summary, f"short_cost_{kind}", PLAIN)) for kind in SHORT_KINDS),
            "",
        )
    )
    rows += [
        (
            "Redis commands per 1-step job, start to end (each: one progress save, then the result)",
            fmt(get(summary, "cost", OURS, "per_1_step_job")),
            fmt(get(summary, "cost", CELERY, "per_1_step_job")),
            fmt(get(summary, "cost", PLAIN, "per_1_step_job")) + " (no-op job)",
            "",
        ),
        (
            "Redis commands per progress update",
            fmt(get(summary, "cost", OURS, "per_progress_update")),
            fmt(get(summary, "cost", CELERY, "per_progress_update")),
            "n/a",
            "",
        ),
        (
            "Redis commands per GET /status (finished job) / per POST /longtask",
            pair(summary, "request_cost", OURS, "per_status_get", "per_post", ""),
            pair(summary, "request_cost", CELERY, "per_status_get", "per_post", ""),
            "n/a",
            "",
        ),
    ]
    rows.append(
        (
            "Redis connections of the web, after the 64-connection start load",
            fmt(get(summary, "web_connections_idle", OURS)),
            f"{fmt(get(summary, 'web_connections_idle', CELERY))} (2 processes)",
            "n/a",
            "",
        )
    )
    rows.append(
        (
            "Peak RSS: web process / worker process",
            f"{fmt(get(summary, 'rss_web', OURS))} / {fmt(get(summary, 'rss_worker', OURS))} MiB",
            f"{fmt(get(summary, 'rss_web', CELERY))} / {fmt(get(summary, 'rss_worker', CELERY))} MiB",
            f"- / {fmt(get(summary, 'rss_worker', PLAIN))} MiB",
            "",
        )
    )
    return rows
