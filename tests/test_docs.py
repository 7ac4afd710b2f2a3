"""The README is the front door: short, and every page of docs/ reachable from it by links that resolve."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
# A Markdown link or image whose target is in this repository: [text](path#anchor).
LOCAL_LINK = re.compile(r"\]\((?!https?:|mailto:)([^)\s]*)\)")
README_MAX_LINES = 350


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in page.read_text().splitlines() if line.startswith("#")}


def broken_links(page: Path) -> list[str]:
    """The links of `page` whose file is missing or whose #anchor names no heading there."""
    broken = []
    for target in LOCAL_LINK.findall(page.read_text()):
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    return broken


def test_the_readme_is_read_in_ten_minutes():
    assert len(README.read_text().splitlines()) <= README_MAX_LINES


def test_every_docs_page_is_linked_from_the_readme():
    linked = {
        (README.parent / target.partition("#")[0]).resolve()
        for target in LOCAL_LINK.findall(README.read_text())
    }
    assert [page.name for page in PAGES if page.resolve() not in linked] == []


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda page: page.name)
def test_every_local_link_resolves(page):
    assert broken_links(page) == []


def test_a_link_to_a_missing_heading_is_found(tmp_path):
    (tmp_path / "other.md").write_text("# Other\n\n## A heading (`x.py`)\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#a-heading-xpy) [gone](other.md#no-such) [file](missing.md)\n")
    assert broken_links(page) == ["other.md#no-such", "missing.md"]


def test_the_benchmark_page_holds_what_make_bench_wrote(tmp_path):
    from bench import report

    page = ROOT / "docs" / "benchmarks.md"
    copy = tmp_path / "docs" / "benchmarks.md"
    copy.parent.mkdir()
    copy.write_text(page.read_text())
    assert report.update_page(copy, (ROOT / "bench" / "results.md").read_text())
    # The copy lives elsewhere, so its chart link differs; the page links the chart beside it.
    chart = re.compile(r"\]\([^)]*results\.png\)")
    assert chart.sub("](results.png)", copy.read_text()) == chart.sub("](results.png)", page.read_text())
    assert "](../bench/results.png)" in page.read_text()
