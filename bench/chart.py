"""The benchmark's PNG: progress latency, start latency, HTTP throughput, short-job drain rate."""

from pathlib import Path

from bench import drain
from bench.figures import CELERY, OURS, PLAIN
from bench.tables import HTTP, STACKS, get


def draw(results: dict, path: Path) -> None:
    """Four panels: progress latency, start latency, HTTP throughput, short-job drain rate."""
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
        {st: [get(s, "progress", st, "p50_ms"), get(s, "progress", st, "p95_ms")] for st in (OURS, CELERY)},
        "Progress latency (save to client)",
        "ms (log)",
        log=True,
    )
    bars(
        axes[0][1],
        ["p50", "p95"],
        {st: [get(s, "start", st, "p50_ms"), get(s, "start", st, "p95_ms")] for st in STACKS},
        "Start latency (request to job running)",
        "ms",
    )
    bars(
        axes[1][0],
        ["GET /status", "POST, cap out of reach", "POST, defaults"],
        {st: [get(s, figure, st, "ok_per_s") for figure in HTTP] for st in (OURS, CELERY)},
        "HTTP successes/s (wrk, 64 connections)",
        "successful answers/s",
    )
    ax = axes[1][1]
    counts = [1, 2, 4]
    lines = [
        (f"drain_{kind}", stack, style, "o", f"{stack} ({kind})")
        for stack in (OURS, PLAIN)
        for kind, style in (("warm", ":"), ("fork", "-"), ("simple", "--"))
    ] + [
        ("drain_prefork_task", CELERY, "-", "s", f"{CELERY} (prefork, 1-step task)"),
        ("drain_prefork", CELERY, ":", "s", f"{CELERY} (prefork, no-op)"),
    ]
    for figure, stack, style, marker, label in lines:
        ax.plot(
            counts,
            [get(s, f"{figure}_{n}", stack, drain.FIELD) for n in counts],
            style,
            marker=marker,
            color=colors[stack],
            label=label,
        )
    ax.set_xticks(counts)
    ax.set_xlabel("worker processes")
    ax.set_ylabel("jobs/s")
    ax.set_title("Short jobs: drain rate (queue filled first)")
    ax.legend(fontsize=8)
    m = results["machine"]
    fig.suptitle(
        f"rq-progress vs the Flask + Celery tutorial: {m['nproc']} CPUs, {m['cpu']}, Python {m['python']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
