"""Lighthouse on a page: its four category scores, and what kept any under 100.

Lighthouse is an npm package, pinned in the Makefile and installed by `make lighthouse` into
`.venv/lighthouse/` (no global install); it drives Debian's chromium (`CHROME_PATH`) headless.
"""

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from support.servers import ROOT

LIGHTHOUSE = ROOT / ".venv" / "lighthouse" / "node_modules" / ".bin" / "lighthouse"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
# Flags for chromium in a container: no sandbox (root), no GPU.
CHROMIUM_FLAGS = "--headless --no-sandbox --disable-gpu"
RUN_DEADLINE_S = 120


def audit(url: str, report_path: Path, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Run Lighthouse's default (mobile, simulated throttling) audit of `url`; its JSON report.

    Args:
        url: the page.
        report_path: where the JSON report is written (kept for a failed test).
        headers: extra request headers, e.g. the Cookie of a browser that started a job.
    """
    args = [str(LIGHTHOUSE), url, "--quiet", f"--chrome-flags={CHROMIUM_FLAGS}", "--output=json"]
    args += [f"--output-path={report_path}", f"--only-categories={','.join(CATEGORIES)}"]
    if headers:
        args.append(f"--extra-headers={json.dumps(headers)}")
    env = {**os.environ, "CHROME_PATH": str(CHROMIUM)}
    subprocess.run(args, env=env, check=True, capture_output=True, timeout=RUN_DEADLINE_S)
    return json.loads(report_path.read_text())


def scores(report: dict[str, Any]) -> dict[str, int]:
    """Category -> score out of 100."""
    return {name: round(100 * (category["score"] or 0)) for name, category in report["categories"].items()}


def shortfalls(report: dict[str, Any]) -> list[str]:
    """The weighted audits that scored under 1, as "category: audit (score, what it saw)"."""
    found = []
    for name, category in report["categories"].items():
        for ref in category["auditRefs"]:
            result = report["audits"][ref["id"]]
            if ref["weight"] and result["score"] is not None and result["score"] < 1:
                found.append(f"{name}: {ref['id']} ({result['score']}, {result.get('displayValue', '')})")
    return found


def requested(report: dict[str, Any]) -> list[str]:
    """The URLs the page requested while it was audited."""
    return [item["url"] for item in report["audits"]["network-requests"]["details"]["items"]]
