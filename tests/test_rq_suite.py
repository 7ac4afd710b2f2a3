"""`make conformance`'s own parts: the rq pin it reads and the list of tests allowed to fail."""

import pytest
import rq

from tests.rq_suite.plugin import EXPECTED_FAILURES, read_expected_failures
from tests.rq_suite.run import SUITE_FILES, pinned_rq_version, unavailable


def test_the_suite_fetched_is_the_installed_rqs():
    assert pinned_rq_version() == rq.VERSION


def test_pinned_rq_version_needs_an_exact_pin(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("flask==3.1.3\nrq>=3\n")
    with pytest.raises(ValueError, match="does not pin rq"):
        pinned_rq_version(requirements)


def test_a_missing_redis_or_sdist_skips_the_run_but_fails_it_in_ci(monkeypatch, capsys):
    monkeypatch.delenv("CI", raising=False)
    assert unavailable("no Redis") == 0
    assert "skipped, no Redis" in capsys.readouterr().err
    monkeypatch.setenv("CI", "1")
    assert unavailable("no Redis") == 1
    assert "required in CI" in capsys.readouterr().err


def test_expected_failures_skip_comments_and_keep_each_reason():
    entries = read_expected_failures("# a comment\n\ntests/test_a.py::T::test_x  stock: fails here too\n")
    entry = entries["tests/test_a.py::T::test_x"]
    assert entry.reason == "stock: fails here too"
    assert entry.fails_with_stock_worker


@pytest.mark.parametrize(
    ("text", "error"),
    [("tests/test_a.py::T::test_x\n", "has no reason"), ("t::x why\nt::x why again\n", "listed twice")],
)
def test_expected_failures_refuse_an_entry_without_reason_or_listed_twice(text, error):
    with pytest.raises(ValueError, match=error):
        read_expected_failures(text)


def test_every_listed_test_is_in_a_file_the_suite_runs():
    files = {f"tests/test_{name}.py" for name in SUITE_FILES}
    entries = read_expected_failures(EXPECTED_FAILURES.read_text())
    assert entries
    assert {test_id.split("::")[0] for test_id in entries} <= files
