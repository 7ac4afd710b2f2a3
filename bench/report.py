"""Turn the raw runs into medians, same-window ratios, a Markdown table and a PNG chart."""

import math
import statistics
from pathlib import Path

from bench.figures import CELERY, OURS, PLAIN, POLL_S

STACKS = (OURS, CELERY, PLAIN)


def _median(values: list) -> object:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return None
    if isinstance(values[0], dict):
        return {key: _median([v.get(key) for v in values]) for key in values[0] if key != "statuses"}
    if isinstance(values[0], int | float):
        return round(statistics.median(values), 3)
    return values[0]


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
        "status_rps_ours_over_tutorial": _ratio_runs(raw, "status", "requests_per_s", OURS, CELERY),
        "post_rps_ours_over_tutorial": _ratio_runs(raw, "post", "requests_per_s", OURS, CELERY),
    }
    for count in (1, 2, 4):
        for kind in ("fork", "simple"):
            ratios[f"short_{kind}_{count}_ours_over_plain"] = _ratio_runs(
                raw, f"short_{kind}_{count}", None, OURS, PLAIN
            )
        for kind in ("fork", "simple"):
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
    return f"{value}{unit}"


def _pair(summary: dict, figure: str, stack: str, a: str, b: str, unit: str = " ms") -> str:
    return f"{_fmt(_get(summary, figure, stack, a))} / {_fmt(_get(summary, figure, stack, b))}{unit}"


def _rate(summary: dict, figure: str, stack: str) -> str:
    rate, p99 = _get(summary, figure, stack, "requests_per_s"), _get(summary, figure, stack, "p99_ms")
    return f"{_fmt(rate)} ({_fmt(p99)} ms)"


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
        (
            "GET /status/<id> of a finished job, 64 connections: req/s (p99)",
            _rate(summary, "status", OURS),
            _rate(summary, "status", CELERY),
            "n/a",
            f"x{_fmt(r['status_rps_ours_over_tutorial'])}",
        ),
        (
            "POST /longtask, 64 connections: req/s (p99)",
            _rate(summary, "post", OURS),
            _rate(summary, "post", CELERY),
            "n/a",
            f"x{_fmt(r['post_rps_ours_over_tutorial'])}",
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
    streams = _get(summary, "streams", OURS)
    per_stream = (
        " / ".join(_fmt(streams.get(k)) for k in ("1", "100", "500"))
        if streams
        else "not measured (no event stream route)"
    )
    rows.append(
        (
            "Redis connections of the web: after the 64-connection load; with 1 / 100 / 500 event streams",
            f"{_fmt(_get(summary, 'web_connections_idle', OURS))}; {per_stream}",
            f"{_fmt(_get(summary, 'web_connections_idle', CELERY))} (2 processes); n/a (polling only)",
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
    """The README's table: the machine, then every figure for the three stacks."""
    m = results["machine"]
    versions = ", ".join(f"{name} {v}" for name, v in m["versions"].items())
    lines = [
        "# Benchmark results",
        "",
        f"{m['date']}; {m['nproc']} CPUs ({m['cpu']}), {m['os']}; Python {m['python']}; {versions}; "
        f"Redis server: {m['redis_server']}; load average at start {m['load_average_at_start']}. "
        f"Medians of {results['runs']} runs; ratios are medians of per-run ratios (ours / other). "
        f"Whole run: {results['wall_s']:.0f} s.",
        "",
    ]
    if results.get("note"):
        lines += [f"**Note:** {results['note']}", ""]
    if not results.get("event_stream"):
        lines += [
            "**No event stream route** (`GET /status/<id>/events`) in this build: our progress latency is "
            f"measured by polling `/status` every {POLL_S:g} s like the tutorial's page, and the "
            "per-stream connection figures are skipped.",
            "",
        ]
    lines += [
        f"| figure | {OURS} | {CELERY} | {PLAIN} | ratio |",
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


def chart(results: dict, path: Path) -> None:
    """Four panels: progress latency, start latency, HTTP throughput, short-job throughput."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = results["summary"]
    colors = {OURS: "#2b7bba", CELERY: "#d95f02", PLAIN: "#7f7f7f"}
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))

    def bars(ax, labels, series, title, unit, log=False):
        width = 0.8 / len(series)
        for i, (stack, values) in enumerate(series.items()):
            xs = [x + i * width for x in range(len(labels))]
            ax.bar(xs, [v or 0 for v in values], width, label=stack, color=colors[stack])
        ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(labels))], labels)
        ax.set_title(title)
        ax.set_ylabel(unit)
        if log:
            ax.set_yscale("log")
            ax.set_ylim(bottom=1)
        ax.legend(fontsize=8)

    bars(
        axes[0][0],
        ["p50", "p95"],
        {st: [_get(s, "progress", st, "p50_ms"), _get(s, "progress", st, "p95_ms")] for st in (OURS, CELERY)},
        "Progress latency (save to client)",
        "ms (log)",
        log=True,
    )
    bars(
        axes[0][1],
        ["p50", "p95"],
        {st: [_get(s, "start", st, "p50_ms"), _get(s, "start", st, "p95_ms")] for st in STACKS},
        "Start latency (request to job running)",
        "ms",
    )
    bars(
        axes[1][0],
        ["GET /status", "POST /longtask"],
        {
            st: [_get(s, "status", st, "requests_per_s"), _get(s, "post", st, "requests_per_s")]
            for st in (OURS, CELERY)
        },
        "HTTP throughput, 64 connections",
        "requests/s",
    )
    ax = axes[1][1]
    counts = [1, 2, 4]
    for stack, kind, style in (
        (OURS, "fork", "-"),
        (OURS, "simple", "--"),
        (PLAIN, "fork", "-"),
        (PLAIN, "simple", "--"),
    ):
        ax.plot(
            counts,
            [_get(s, f"short_{kind}_{n}", stack) for n in counts],
            style,
            marker="o",
            color=colors[stack],
            label=f"{stack} ({kind})",
        )
    ax.plot(
        counts,
        [_get(s, f"short_prefork_{n}", CELERY) for n in counts],
        "-",
        marker="s",
        color=colors[CELERY],
        label=f"{CELERY} (prefork)",
    )
    ax.set_xticks(counts)
    ax.set_xlabel("worker processes")
    ax.set_ylabel("jobs/s")
    ax.set_title("Short-job throughput")
    ax.legend(fontsize=8)
    m = results["machine"]
    fig.suptitle(
        f"rq-progress vs the Flask + Celery tutorial: {m['nproc']} CPUs, {m['cpu']}, Python {m['python']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


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
